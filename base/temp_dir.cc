#include "base/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tend {

absl::StatusOr<ScopedTempDir> ScopedTempDir::Create(const std::string& prefix) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string tmpl = (base / (prefix + "XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot create a temporary directory in ", base.string(), ": ",
                     strerror(errno), " (set TMPDIR to a writable directory)"));
  }
  return ScopedTempDir(buf.data());
}

ScopedTempDir::~ScopedTempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::function<absl::Status(std::ostream&)>& write) {
  const std::string partial = path + ".partial";
  std::ofstream file(partial, std::ios::trunc);
  if (!file) return absl::UnavailableError(absl::StrCat("cannot write ", partial));
  absl::Status s = write(file);
  file.close();
  if (s.ok() && !file) {
    s = absl::UnavailableError(absl::StrCat("writing ", partial, " failed (disk full?)"));
  }
  std::error_code ec;
  if (s.ok()) {
    std::filesystem::rename(partial, path, ec);
    if (ec) s = absl::UnavailableError(absl::StrCat("renaming ", partial, " to ", path, ": ",
                                                    ec.message()));
  }
  if (!s.ok()) std::filesystem::remove(partial, ec);
  return s;
}

}  // namespace tend
