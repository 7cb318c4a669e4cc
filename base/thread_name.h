// Names the calling thread, as `top -H`, `ps -L`, perf, gdb and /proc/PID/task/TID/comm show it:
// an operator looking at a busy engine sees which of its threads is busy (the fold, the commit
// writer, the decoder, the dispatcher) beside librdkafka's (`rdk:broker...`) and RocksDB's
// (`rocksdb:high`), instead of a dozen threads all called `tend`. Linux keeps 15 characters; a
// longer name is cut there. Best effort: a failure leaves the old name and is not reported.
#ifndef TEND_BASE_THREAD_NAME_H_
#define TEND_BASE_THREAD_NAME_H_

#include <pthread.h>

#include <string>

#include "absl/strings/string_view.h"

namespace tend {

inline void SetThreadName(absl::string_view name) {
  constexpr size_t kMaxChars = 15;  // TASK_COMM_LEN (16) with its terminating NUL
  const std::string cut(name.substr(0, kMaxChars));
  (void)pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace tend

#endif  // TEND_BASE_THREAD_NAME_H_
