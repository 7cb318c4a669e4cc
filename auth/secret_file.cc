#include "auth/secret_file.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file.h"

namespace tend {

absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view what,
                                           bool private_file) {
  constexpr int64_t kMaxSecretFileBytes = 1 << 20;
  mode_t mode = 0;
  auto text = ReadBoundedFile(path, kMaxSecretFileBytes, &mode);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("the ", what, ": ", text.status().message()));
  }
  if (private_file && (mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("the ", what, " ", path, " may be read by group or others; chmod 600 it"));
  }
  return text;
}

bool IsVisible(absl::string_view secret) {
  for (char c : secret) {
    if (c <= ' ' || c >= 127) return false;
  }
  return true;
}

bool IsSecret(absl::string_view secret) {
  return secret.size() >= kMinSecretBytes && secret.size() <= kMaxSecretBytes && IsVisible(secret);
}

std::vector<SecretLine> SecretLines(absl::string_view text) {
  std::vector<SecretLine> lines;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line.front() != '#') lines.push_back({number, line});
  }
  return lines;
}

}  // namespace tend
