// base/printable.h: stored text printed for a person carries no control characters.
#include "base/printable.h"

#include <catch2/catch.hpp>

#include <string>

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

}  // namespace
}  // namespace tend
