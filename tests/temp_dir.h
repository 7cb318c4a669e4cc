// A scratch directory per test (Catch2 REQUIREs it was made). Header-only: the unit tests of the
// pure modules use it without linking anything beyond tend_base.
#ifndef TEND_TESTS_TEMP_DIR_H_
#define TEND_TESTS_TEMP_DIR_H_

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>

#include "base/temp_dir.h"

namespace tend::testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    auto dir = ScopedTempDir::Create("tend-test-");
    REQUIRE(dir.ok());
    dir_.emplace(std::move(*dir));
  }
  const std::string& path() const { return dir_->path(); }
  std::string Sub(const std::string& name) const { return path() + "/" + name; }

 private:
  std::optional<ScopedTempDir> dir_;
};

}  // namespace tend::testing

#endif  // TEND_TESTS_TEMP_DIR_H_
