// base/time.h: times as google.protobuf.Timestamp and back, over the Timestamp's whole range.
#include "base/time.h"

#include <catch2/catch.hpp>

#include <string>

namespace tend {
namespace {

absl::Time Parse(const std::string& text) {
  absl::Time t;
  std::string err;
  REQUIRE(absl::ParseTime(absl::RFC3339_full, text, &t, &err));
  return t;
}

TEST_CASE("a time goes to a Timestamp and back whole, up to 9999-12-31", "[base]") {
  for (const std::string text :
       {"0001-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "1970-01-01T00:00:00Z",
        "2026-12-05T13:50:01.123456789Z", "2262-04-11T23:47:16.854775807Z",
        "2262-04-11T23:47:17.000000001Z", "3000-01-01T00:00:00.25Z",
        "9999-12-31T23:59:59.999999999Z"}) {
    INFO(text);
    const absl::Time t = Parse(text);
    const google::protobuf::Timestamp p = ToProtoTime(t);
    CHECK(CheckProtoTime(p, "t").ok());
    CHECK(p.nanos() >= 0);
    CHECK(p.nanos() < 1'000'000'000);
    CHECK(FromProtoTime(p) == t);
  }
  // Seconds round down: half a second before the epoch is -1 s and 500,000,000 ns.
  const google::protobuf::Timestamp before = ToProtoTime(Parse("1969-12-31T23:59:59.5Z"));
  CHECK(before.seconds() == -1);
  CHECK(before.nanos() == 500'000'000);
  // Past the Timestamp's range: refused, naming the field.
  const absl::Status after = CheckProtoTime(ToProtoTime(Parse("10000-01-01T00:00:00Z")), "as_of");
  CHECK(after.code() == absl::StatusCode::kInvalidArgument);
  CHECK(after.message() == "as_of: not a valid timestamp (0001-01-01 to 9999-12-31)");
}

}  // namespace
}  // namespace tend
