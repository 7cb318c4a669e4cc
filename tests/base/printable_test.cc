// base/printable.h: stored text printed for a person carries no control characters.
#include "base/printable.h"

#include <catch2/catch.hpp>

#include <string>

namespace tend {
namespace {

TEST_CASE("control characters, DEL and backslashes are escaped, UTF-8 is kept") {
  CHECK(Printable("Diabetes Programme 2") == "Diabetes Programme 2");
  CHECK(Printable("\x1b[2Jforged\nline") == "\\x1b[2Jforged\\x0aline");
  CHECK(Printable(std::string("a\0b\x7f", 4)) == "a\\x00b\\x7f");
  CHECK(Printable("a\\x1b") == "a\\x5cx1b");  // an escape cannot be forged either
  CHECK(Printable("糖尿病") == "糖尿病");
}

TEST_CASE("a message is cut at a character's start and says how much it left out") {
  CHECK(Bounded("short", 10) == "short");
  CHECK(Bounded("0123456789abc", 10) == "0123456789... [3 more bytes]");
  // "é" is two bytes: a cut inside it moves back to its start.
  CHECK(Bounded("012345678\xc3\xa9z", 10) == "012345678... [3 more bytes]");
}

}  // namespace
}  // namespace tend
