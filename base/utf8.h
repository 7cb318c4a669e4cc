// Well-formed UTF-8 (RFC 3629, section 4): a byte sequence is a character when its first byte
// announces its length, its other bytes are continuation bytes, and the code point is one of
// that length's (no overlong form), not a UTF-16 surrogate, and at most U+10FFFF. Proto3 refuses
// to parse a string field that is not well-formed UTF-8, so text tend writes into a proto3
// string from elsewhere than a parsed message (a YAML file) is checked with this first.
#ifndef TEND_BASE_UTF8_H_
#define TEND_BASE_UTF8_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace tend {

// The character that starts at `text[i]`: its length in bytes, and its code point in `*cp`; 0
// when the bytes there are not a well-formed character (`i` < text.size()).
inline size_t Utf8CharAt(absl::string_view text, size_t i, uint32_t* cp) {
  const auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  const size_t n = b >= 0xc2 && b <= 0xdf   ? 2
                   : b >= 0xe0 && b <= 0xef ? 3
                   : b >= 0xf0 && b <= 0xf4 ? 4
                                            : 0;
  if (n == 0 || i + n > text.size()) return 0;
  uint32_t c = n == 2 ? b & 0x1f : n == 3 ? b & 0x0f : b & 0x07;
  for (size_t k = 1; k < n; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xc0) != 0x80) return 0;
    c = (c << 6) | (next & 0x3f);
  }
  if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
      (n == 4 && (c < 0x10000 || c > 0x10ffff))) {
    return 0;
  }
  *cp = c;
  return n;
}

// Whether all of `text` is well-formed UTF-8; where it is not, the offset of the first byte
// that is not part of a character in `*bad_at`.
inline bool IsWellFormedUtf8(absl::string_view text, size_t* bad_at = nullptr) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t n = Utf8CharAt(text, i, &cp);
    if (n == 0) {
      if (bad_at != nullptr) *bad_at = i;
      return false;
    }
    i += n;
  }
  return true;
}

}  // namespace tend

#endif  // TEND_BASE_UTF8_H_
