// The one conversion between protobuf's well-known time types and absl's.
#ifndef TEND_BASE_TIME_H_
#define TEND_BASE_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace tend {

// seconds + nanos since the Unix epoch; no range check (validate input before).
inline absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

inline absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace tend

#endif  // TEND_BASE_TIME_H_
