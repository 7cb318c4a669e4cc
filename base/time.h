// The one conversion between protobuf's well-known time types and absl's, both ways.
#ifndef TEND_BASE_TIME_H_
#define TEND_BASE_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tend {

// seconds + nanos since the Unix epoch; no range check (validate input before).
inline absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// `t` as seconds + nanos since the Unix epoch (nanos in [0, 1e9), seconds rounded down).
inline google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  // The part below the second, not the nanoseconds since the epoch, which an int64 holds only
  // to the year 2262 (past it the nanos came out of range, and a valid time was refused).
  out.set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(out.seconds()))));
  return out;
}

// Whether seconds and nanos since the Unix epoch make a valid google.protobuf.Timestamp
// (0001-01-01 to 9999-12-31, nanos in [0, 1e9)).
inline bool IsValidProtoTime(int64_t seconds, int32_t nanos) {
  return seconds >= google::protobuf::util::TimeUtil::kTimestampMinSeconds &&
         seconds <= google::protobuf::util::TimeUtil::kTimestampMaxSeconds && nanos >= 0 &&
         nanos <= 999'999'999;
}

// kInvalidArgument naming `field` unless `t` is a valid google.protobuf.Timestamp.
inline absl::Status CheckProtoTime(const google::protobuf::Timestamp& t, absl::string_view field) {
  if (!IsValidProtoTime(t.seconds(), t.nanos())) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a valid timestamp (0001-01-01 to 9999-12-31)"));
  }
  return absl::OkStatus();
}

inline absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace tend

#endif  // TEND_BASE_TIME_H_
