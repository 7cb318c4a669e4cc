// The benches' measure of work done: the process's CPU time (threads included) and minor page
// faults, read before and after the part measured; and what the host charges for a page touched
// the first time, which differs fivefold between the VMs tend has been measured on
// (docs/benchmarks.md, "First-touch faults").
#ifndef TEND_BENCH_CPU_H_
#define TEND_BENCH_CPU_H_

#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include <cstddef>
#include <cstdint>

namespace tend {

// What getrusage says of the whole process: CPU time, user and system, in seconds, and minor
// page faults (pages touched for the first time, or again after they were given back, each
// zeroed by the kernel).
struct ProcessUsage {
  double cpu_s = 0;
  int64_t minor_faults = 0;
};

inline ProcessUsage ReadProcessUsage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
          ru.ru_minflt};
}

inline double ProcessCpuSeconds() { return ReadProcessUsage().cpu_s; }

// The CPU time, in microseconds, of one first touch of a 4 KiB page: `bytes` of fresh anonymous
// memory (not the allocator's, which may hold pages already touched) written a byte a page, on
// this thread. 0 if the memory could not be mapped.
inline double FirstTouchMicrosPerPage(size_t bytes = size_t{64} << 20) {
  constexpr size_t kPage = 4096;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  auto thread_cpu_ns = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
  };
  volatile char* bytes_p = static_cast<char*>(p);
  const double t0 = thread_cpu_ns();
  for (size_t i = 0; i < bytes; i += kPage) bytes_p[i] = 1;
  const double ns = thread_cpu_ns() - t0;
  munmap(p, bytes);
  return ns / 1e3 / static_cast<double>(bytes / kPage);
}

}  // namespace tend

#endif  // TEND_BENCH_CPU_H_
