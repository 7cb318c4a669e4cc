// Text from the log (an event's free-text fields: a programme, a health manager's id) printed for
// a person to read: every control character escaped, so that stored text cannot move the
// cursor, clear the screen or forge a line of output in an operator's terminal. And messages
// bounded in length.
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

// `message` cut to its first `max_bytes` bytes (at a UTF-8 character's start), with how many it
// left out: an error that quotes its input (a 3 MB template parameter) stays readable, and
// bounded where it is written or sent.
inline std::string Bounded(absl::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xc0) == 0x80) --cut;
  return absl::StrFormat("%s... [%d more bytes]", message.substr(0, cut), message.size() - cut);
}

}  // namespace tend

#endif  // TEND_BASE_PRINTABLE_H_
