// Reading the files that hold secrets (tokens, keys): bounded, refused when others may read
// them, and the rule for a secret's characters. Shared by auth.cc and record_mac.cc only.
#ifndef TEND_AUTH_SECRET_FILE_H_
#define TEND_AUTH_SECRET_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

// A secret (a token, a key) is 32 to 512 characters of visible ASCII.
inline constexpr size_t kMinSecretBytes = 32;
inline constexpr size_t kMaxSecretBytes = 512;

// The content of a PEM, token or key file (at most 1 MiB; base/file.h). `private_file`: refused
// when group or others may read it, naming `what` and the chmod to give.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view what,
                                           bool private_file);

// Visible ASCII only: no spaces, controls or line breaks (a token goes into a header).
bool IsVisible(absl::string_view secret);
// kMinSecretBytes to kMaxSecretBytes characters, all visible.
bool IsSecret(absl::string_view secret);

// A line of a tokens or key file that says something: its number (from 1) and its text with
// surrounding whitespace trimmed. Blank lines and lines starting with '#' are left out.
struct SecretLine {
  int number;
  absl::string_view text;  // a view into the file's text
};
std::vector<SecretLine> SecretLines(absl::string_view text);

}  // namespace tend

#endif  // TEND_AUTH_SECRET_FILE_H_
