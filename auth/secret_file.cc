#include "auth/secret_file.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
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

}  // namespace tend
