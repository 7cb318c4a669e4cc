// The process's CPU time, user and system, in seconds: the benches' measure of work done
// (threads included), read before and after the part being measured.
#ifndef TEND_BENCH_CPU_H_
#define TEND_BENCH_CPU_H_

#include <sys/resource.h>

namespace tend {

inline double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace tend

#endif  // TEND_BENCH_CPU_H_
