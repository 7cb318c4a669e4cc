#include "storage/manifest_seal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/file.h"

namespace tend {
namespace {

constexpr char kSealHeader[] = "tend-manifest-seal 1";
constexpr int64_t kMaxSealBytes = 256;

// The number in "MANIFEST-000012"; false for anything else.
bool ManifestNumber(absl::string_view name, uint64_t* number) {
  return absl::ConsumePrefix(&name, "MANIFEST-") && !name.empty() &&
         name.find_first_not_of("0123456789") == absl::string_view::npos &&
         absl::SimpleAtoi(name, number);
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::Status WriteManifestSeal(const std::string& dir, const std::string& manifest_name,
                               uint64_t bytes) {
  uint64_t number;
  if (!ManifestNumber(manifest_name, &number)) {
    return absl::InvalidArgumentError(absl::StrCat("not a MANIFEST name: ", manifest_name));
  }
  const std::string path = dir + "/" + kManifestSealFile;
  const std::string tmp = path + ".tmp";
  const std::string text = absl::StrCat(kSealHeader, "\n", manifest_name, " ", bytes, "\n");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("writing " + tmp);
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                       ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (!written) return Errno("writing " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("renaming " + tmp);
  return SyncPath(dir);
}

absl::Status SealCurrentManifest(const std::string& dir) {
  auto current = ReadBoundedFile(dir + "/CURRENT", kMaxSealBytes);
  if (!current.ok()) return current.status();
  const std::string name(absl::StripTrailingAsciiWhitespace(*current));
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(dir + "/" + name, ec);
  if (ec) return absl::InternalError(absl::StrCat("reading ", dir, "/", name, ": ", ec.message()));
  return WriteManifestSeal(dir, name, bytes);
}

absl::Status CheckManifestSeal(const std::string& dir, const std::string& what_to_do) {
  const std::string path = dir + "/" + kManifestSealFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::OkStatus();
  auto damaged = [&](const std::string& why) {
    return absl::DataLossError(
        absl::StrCat("state directory ", dir, " is damaged: ", why, ". ", what_to_do));
  };
  // The seal first: tend writes it after RocksDB switched CURRENT, so a seal read before CURRENT
  // never names a newer MANIFEST than CURRENT does, even beside a running engine.
  auto seal = ReadBoundedFile(path, kMaxSealBytes);
  if (!seal.ok()) return damaged(std::string(seal.status().message()));
  std::vector<absl::string_view> lines = absl::StrSplit(*seal, '\n');
  std::vector<absl::string_view> fields;
  if (lines.size() == 3 && lines[0] == kSealHeader && lines[2].empty()) {
    fields = absl::StrSplit(lines[1], ' ');
  }
  uint64_t sealed_number = 0, sealed_bytes = 0;
  if (fields.size() != 2 || !ManifestNumber(fields[0], &sealed_number) ||
      !absl::SimpleAtoi(fields[1], &sealed_bytes)) {
    return damaged(absl::StrCat(path, " is not a version 1 MANIFEST seal"));
  }
  // An engine opening the directory meanwhile writes a new MANIFEST, switches CURRENT to it and
  // deletes the old one: a MANIFEST that vanished while CURRENT moved on is read again, not
  // taken for damage.
  std::string name;
  for (int attempt = 0;; ++attempt) {
    auto current = ReadBoundedFile(dir + "/CURRENT", kMaxSealBytes);
    if (!current.ok()) return damaged(std::string(current.status().message()));
    name = std::string(absl::StripTrailingAsciiWhitespace(*current));
    uint64_t number = 0;
    if (!ManifestNumber(name, &number)) {
      return damaged(absl::StrCat(dir, "/CURRENT does not name a MANIFEST"));
    }
    if (number > sealed_number) return absl::OkStatus();
    if (number < sealed_number) {
      return damaged(absl::StrCat("CURRENT names ", name, ", older than ", fields[0],
                                  " which tend last recorded (rolled back)"));
    }
    const uintmax_t bytes = std::filesystem::file_size(dir + "/" + name, ec);
    if (!ec && bytes >= sealed_bytes) return absl::OkStatus();
    auto again = ReadBoundedFile(dir + "/CURRENT", kMaxSealBytes);
    if (again.ok() && *again != *current && attempt < 10) continue;  // switched: look again
    if (ec) return damaged(absl::StrCat(name, " cannot be read (", ec.message(), ")"));
    return damaged(absl::StrCat(name, " is ", bytes, " bytes, tend recorded ", sealed_bytes,
                                " when it last wrote it (cut short; the edits after byte ",
                                bytes, " are lost)"));
  }
}

}  // namespace tend
