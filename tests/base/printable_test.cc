// base/printable.h: stored text printed for a person carries no control characters; base/utf8.h:
// well-formed UTF-8 told from what is not.
#include "base/printable.h"

#include <catch2/catch.hpp>
#include <string>

#include "base/utf8.h"

namespace tend {
namespace {

TEST_CASE("control characters C0, DEL and C1, and bytes that are not UTF-8, are escaped, and UTF-8 "
          "is kept") {
  CHECK(Printable("Diabetes Programme 2") == "Diabetes Programme 2");
  CHECK(Printable("\x1b[2Jforged\nline") == "\\x1b[2Jforged\\x0aline");
  CHECK(Printable(std::string("a\0b\x7f", 4)) == "a\\x00b\\x7f");
  CHECK(Printable("C\\Y") == "C\\Y");  // a message's own escapes stay readable
  CHECK(Printable("糖尿病 é €") == "糖尿病 é €");
  CHECK(Printable("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");  // U+1F600, four bytes
  CHECK(Printable("C\xc2\x9bY") == "C\\xc2\\x9bY");  // U+009B, CSI in C1
  CHECK(Printable("C\x9bY") == "C\\x9bY");          // the same as one raw byte
  CHECK(Printable("\xc0\xaf") == "\\xc0\\xaf");        // an overlong '/'
  CHECK(Printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a surrogate
  CHECK(Printable("\xe7\xb3") == "\\xe7\\xb3");        // cut short
}

TEST_CASE("a message is cut at a character's start and says how much it left out") {
  CHECK(Bounded("short", 10) == "short");
  CHECK(Bounded("0123456789abc", 10) == "0123456789... [3 more bytes]");
  // "é" is two bytes: a cut inside it moves back to its start.
  CHECK(Bounded("012345678\xc3\xa9z", 10) == "012345678... [3 more bytes]");
}

TEST_CASE("well-formed UTF-8 is told from what is not, at the first bad byte (RFC 3629)") {
  size_t at = 99;
  for (const char* good : {"", "plain ascii", "caf\xc3\xa9", "\xe8\xa1\x80\xe7\xb3\x96",
                           "\xf0\x9f\x92\x8a", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xc2\x80"}) {
    INFO(Printable(good));
    CHECK(IsWellFormedUtf8(good, &at));
  }
  struct Bad {
    std::string text;
    size_t at;
  };
  for (const Bad& bad : std::initializer_list<Bad>{
           {"caf\xe9", 3},               // Latin-1
           {"ok\xc3", 2},                // cut short
           {"\xc0\xaf", 0},              // overlong '/'
           {"\xe0\x80\xaf", 0},          // overlong, three bytes
           {"\xed\xa0\x80", 0},          // a UTF-16 surrogate
           {"\xf4\x90\x80\x80", 0},      // past U+10FFFF
           {"\xf8\x88\x80\x80\x80", 0},  // five bytes
           {"a\x80"
            "b",
            1},               // a lone continuation byte
           {"\xe2\x82x", 0},  // a continuation byte missing
       }) {
    INFO(Printable(bad.text));
    CHECK_FALSE(IsWellFormedUtf8(bad.text, &at));
    CHECK(at == bad.at);
  }
}

}  // namespace
}  // namespace tend
