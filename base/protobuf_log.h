// libprotobuf's log lines, in tend's log format and bounded in number. Protobuf logs an ERROR line
// for every message it refuses to parse that holds invalid UTF-8 in a string field, and a gRPC
// request or a Kafka record is input anyone may send: unbounded, one client could fill the log at
// thousands of lines a second. RouteProtobufLog lets a few lines a minute through and says how
// many it left out.
#ifndef TEND_BASE_PROTOBUF_LOG_H_
#define TEND_BASE_PROTOBUF_LOG_H_

#include <cstdint>
#include <mutex>

#include "absl/time/time.h"

namespace tend {

// Admits at most `burst` lines in each `window` (a window starts at the first line after the
// previous one ended); the rest are counted. Thread-safe.
class LogLimiter {
 public:
  LogLimiter(int burst, absl::Duration window) : burst_(burst), window_(window) {}

  // Whether a line at `now` is to be written. When it is, *left_out is the number of lines not
  // written since the last one that was, for that line to report.
  bool Admit(absl::Time now, int64_t* left_out);

 private:
  const int burst_;
  const absl::Duration window_;
  std::mutex mu_;
  absl::Time window_start_ = absl::InfinitePast();
  int in_window_ = 0;
  int64_t left_out_ = 0;
};

// Sends libprotobuf's log lines to stderr as tend's own (base/log.h), with "libprotobuf" and the
// source line, each escaped and cut to 1 KiB (base/printable.h), at most 10 a minute (FATAL
// always). Call once from main, before any thread parses a message.
void RouteProtobufLog();

}  // namespace tend

#endif  // TEND_BASE_PROTOBUF_LOG_H_
