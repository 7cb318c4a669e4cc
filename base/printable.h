// Text from the log (an event's free-text fields: a programme, a health manager's id) printed for
// a person to read: every control character escaped, so that stored text cannot move the
// cursor, clear the screen or forge a line of output in an operator's terminal.
#ifndef TEND_BASE_PRINTABLE_H_
#define TEND_BASE_PRINTABLE_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace tend {

// `text` with each byte below 0x20, DEL and '\' written as \xNN; everything else (UTF-8
// included) as it is.
inline std::string Printable(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f || c == '\\') {
      absl::StrAppendFormat(&out, "\\x%02x", b);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace tend

#endif  // TEND_BASE_PRINTABLE_H_
