// Text from the log (an event's free-text fields: a programme, a health manager's id) printed for
// a person to read: every control character escaped, so that stored text cannot move the
// cursor, clear the screen or forge a line of output in an operator's terminal. And messages
// bounded in length.
#ifndef TEND_BASE_PRINTABLE_H_
#define TEND_BASE_PRINTABLE_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "base/utf8.h"

namespace tend {

// The ASCII control characters: C0 (below 0x20) and DEL, which tend's checks of stored text
// refuse and its escapes for people and config files rewrite (events/codec.cc's checks and
// Printable below add the C1 controls of UTF-8; base/json.cc escapes C0 alone, as JSON requires).
constexpr bool IsAsciiControl(unsigned char b) { return b < 0x20 || b == 0x7f; }

// `text` with every control character written as \xNN: the C0 bytes (below 0x20), DEL, the C1
// characters U+0080-U+009F (U+009B alone starts an escape sequence in some terminals), and any
// byte that is not part of well-formed UTF-8 (a lone 0x9B is the same introducer to a terminal
// reading 8-bit controls). Everything else, UTF-8 included, as it is.
inline std::string Printable(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto escape = [&out](unsigned char b) { absl::StrAppendFormat(&out, "\\x%02x", b); };
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      if (IsAsciiControl(b)) {
        escape(b);
      } else {
        out.push_back(static_cast<char>(b));
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t n = Utf8CharAt(text, i, &cp);
    if (n == 0) {  // not a well-formed character
      escape(b);
      ++i;
    } else if (cp <= 0x9f) {  // C1
      for (size_t k = 0; k < n; ++k) escape(static_cast<unsigned char>(text[i + k]));
      i += n;
    } else {
      out.append(text.data() + i, n);
      i += n;
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
