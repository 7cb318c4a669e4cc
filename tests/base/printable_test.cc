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

}  // namespace
}  // namespace tend
