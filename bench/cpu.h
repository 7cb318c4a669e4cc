// The process's CPU time, user and system, in seconds: the benches' measure of work done
// (threads included), and its minor page faults; read before and after the part measured.
#ifndef TEND_BENCH_CPU_H_
#define TEND_BENCH_CPU_H_

#include <sys/resource.h>

#include <cstdint>

namespace tend {

inline double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The process's minor page faults so far: pages it touched for the first time (or again after
// they were given back), each zeroed by the kernel.
inline int64_t ProcessMinorFaults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

}  // namespace tend

#endif  // TEND_BENCH_CPU_H_
