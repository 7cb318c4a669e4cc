// Minimal logging to stderr: one line per call with a UTC timestamp and level. Thread-safe (one
// write(2) per line). Kept small on purpose: the engine logs state changes, never per event.
#ifndef TEND_BASE_LOG_H_
#define TEND_BASE_LOG_H_

#include <unistd.h>

#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tend {

template <typename... Args>
void Log(absl::string_view level, const absl::FormatSpec<Args...>& format, const Args&... args) {
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ", level, " ",
      absl::StrFormat(format, args...), "\n");
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

#define TEND_LOG_INFO(...) ::tend::Log("INFO", __VA_ARGS__)
#define TEND_LOG_WARN(...) ::tend::Log("WARN", __VA_ARGS__)
#define TEND_LOG_ERROR(...) ::tend::Log("ERROR", __VA_ARGS__)

}  // namespace tend

#endif  // TEND_BASE_LOG_H_
