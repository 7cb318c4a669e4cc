// libprotobuf's log lines are bounded in number: hostile input that protobuf refuses to parse
// (invalid UTF-8 in a string field) cannot fill the log.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <google/protobuf/wrappers.pb.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "base/protobuf_log.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

TEST_CASE("the log limiter admits a burst a window and reports what it left out") {
  LogLimiter limiter(3, absl::Minutes(1));
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  int64_t left_out = -1;
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.Admit(t0 + absl::Seconds(i), &left_out));
    CHECK(left_out == 0);
  }
  CHECK_FALSE(limiter.Admit(t0 + absl::Seconds(10), &left_out));
  CHECK_FALSE(limiter.Admit(t0 + absl::Seconds(59), &left_out));
  CHECK(limiter.Admit(t0 + absl::Seconds(60), &left_out));
  CHECK(left_out == 2);
  CHECK(limiter.Admit(t0 + absl::Seconds(61), &left_out));
  CHECK(left_out == 0);
}

TEST_CASE("libprotobuf's complaints about hostile input reach the log ten a minute") {
  RouteProtobufLog();
  testing::TempDir dir;
  const std::string path = dir.Sub("stderr");
  const int saved = dup(STDERR_FILENO);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(saved >= 0);
  REQUIRE(fd >= 0);
  REQUIRE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  // A proto3 string field holding a byte that is not UTF-8: field 1, length 1, 0xff.
  const std::string hostile("\x0a\x01\xff", 3);
  int refused = 0;
  for (int i = 0; i < 200; ++i) {
    google::protobuf::StringValue value;
    if (!value.ParseFromString(hostile)) ++refused;
  }
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fd);
  CHECK(refused == 200);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n', absl::SkipEmpty())) {
    CHECK(absl::StrContains(line, "ERROR libprotobuf "));
    CHECK(absl::StrContains(line, "UTF-8"));
    ++lines;
  }
  CHECK(lines == 10);
}

}  // namespace
}  // namespace tend
