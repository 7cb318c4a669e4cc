#include "base/protobuf_log.h"

#include <google/protobuf/stubs/logging.h>

#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/printable.h"

namespace tend {

bool LogLimiter::Admit(absl::Time now, int64_t* left_out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (now - window_start_ >= window_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++left_out_;
    return false;
  }
  ++in_window_;
  *left_out = left_out_;
  left_out_ = 0;
  return true;
}

namespace {

constexpr size_t kMaxLine = 1024;
constexpr int kLinesPerMinute = 10;

LogLimiter& ProtobufLimiter() {
  static LogLimiter* limiter = new LogLimiter(kLinesPerMinute, absl::Minutes(1));
  return *limiter;
}

void ProtobufLogHandler(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  int64_t left_out = 0;
  // A monotonic clock: a wall clock stepped back would silence the lines for as long.
  const absl::Time now =
      absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  if (level != google::protobuf::LOGLEVEL_FATAL && !ProtobufLimiter().Admit(now, &left_out)) {
    return;
  }
  const char* name = level == google::protobuf::LOGLEVEL_INFO      ? "INFO"
                     : level == google::protobuf::LOGLEVEL_WARNING ? "WARN"
                                                                   : "ERROR";
  Log(name, "libprotobuf %s:%d: %s%s", filename == nullptr ? "?" : filename, line,
      Bounded(Printable(message), kMaxLine),
      left_out > 0 ? absl::StrCat(" (", left_out, " earlier libprotobuf lines were not logged: at "
                                  "most ", kLinesPerMinute, " a minute)")
                   : std::string());
}

}  // namespace

void RouteProtobufLog() { google::protobuf::SetLogHandler(&ProtobufLogHandler); }

}  // namespace tend
