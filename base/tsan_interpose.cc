// ThreadSanitizer builds only (TEND_TSAN, ./tools/dev tsan): lets TSan see the synchronisation
// of two prebuilt Debian libraries that it cannot see on its own. Not compiled into any other
// build.
//
// 1. absl::Mutex. Debian's absl is not built with -fsanitize=thread, and its Mutex waits on
//    futexes, not pthreads: TSan reports every access guarded by one as a race (a two-thread
//    counter under absl::MutexLock is reported, the same under std::mutex is not; checked
//    2026-12-04 with Debian's g++ 12 and libabsl 20220623). This file defines the Mutex member
//    functions tend calls; the executable's definitions take precedence over the shared
//    library's (ELF symbol interposition). Each calls the library's own (dlsym RTLD_NEXT) and
//    tells TSan what it did, with the annotations of <sanitizer/tsan_interface.h>: a lock
//    acquires the mutex's address, an unlock releases it, and an Await, which unlocks and locks
//    again inside the library, does both around the call. The library evaluates an Await's
//    condition with the mutex held, in the waiting thread or in one that unlocks, but without
//    going through Lock: the condition is wrapped so that its evaluation acquires and releases
//    too.
// 2. C11 threads. librdkafka starts its threads with glibc's thrd_create and locks with mtx_*
//    and cnd_*, which call glibc's pthread functions internally, where TSan's interceptors do
//    not reach: a thread started so has no TSan state and crashes at its first allocation (the
//    mock cluster's thread did, in every integration test). The C11 thread, mutex and condition
//    functions librdkafka imports are defined here on the pthread functions TSan intercepts, as
//    glibc implements them (the C11 types are the pthread types: static_asserts below; errors
//    mapped as glibc's thrd_err_map does). Its call_once and thrd_current stay glibc's:
//    thrd_current is pthread_self, and a once-flag's ordering, unseen, stays inside librdkafka.
//
// Only what tend calls is wrapped: a first use of Mutex::TryLock, ReaderLock, LockWhen or
// absl::CondVar needs its wrapper here, or TSan reports the accesses it guards.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sanitizer/tsan_interface.h>
#include <threads.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

// The shared library's definition of `symbol` (mangled), which this file's definitions hide.
void* Real(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_interpose: %s not found in the loaded absl (%s)\n", symbol,
                 dlerror());
    std::abort();
  }
  return f;
}

// The mangled names below spell the inline namespace this absl was built with.
#define TEND_TSAN_STR2(x) #x
#define TEND_TSAN_STR(x) TEND_TSAN_STR2(x)
static_assert(std::string_view(TEND_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME)) == "debian3",
              "the mangled names below spell absl's inline namespace as debian3");

// A condition evaluated by the library with `mu` held (see above).
struct Annotated {
  const absl::Condition* cond;
  const absl::Mutex* mu;
};
bool EvalAnnotated(Annotated* a) {
  __tsan_acquire(const_cast<absl::Mutex*>(a->mu));
  const bool held = a->cond->Eval();
  __tsan_release(const_cast<absl::Mutex*>(a->mu));
  return held;
}

// Calls `await(condition)`, one of the library's Await variants on `mu`, with the condition
// annotated: `mu` is handed off while it waits and taken back once it returns.
template <typename Await>
auto AwaitAnnotated(absl::Mutex* mu, const absl::Condition& cond, Await await) {
  Annotated annotated{&cond, mu};
  __tsan_release(mu);
  struct AcquireOnReturn {
    absl::Mutex* mu;
    ~AcquireOnReturn() { __tsan_acquire(mu); }
  } acquire{mu};
  return await(absl::Condition(&EvalAnnotated, &annotated));
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto real =
      reinterpret_cast<void (*)(Mutex*)>(Real("_ZN4absl7debian35Mutex4LockEv"));
  real(this);
  __tsan_acquire(this);
}

void Mutex::Unlock() {
  static const auto real =
      reinterpret_cast<void (*)(Mutex*)>(Real("_ZN4absl7debian35Mutex6UnlockEv"));
  __tsan_release(this);
  real(this);
}

void Mutex::Await(const Condition& cond) {
  static const auto real = reinterpret_cast<void (*)(Mutex*, const Condition&)>(
      Real("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE"));
  AwaitAnnotated(this, cond, [this](const Condition& c) { real(this, c); });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = reinterpret_cast<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      Real("_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  return AwaitAnnotated(this, cond, [&](const Condition& c) { return real(this, c, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = reinterpret_cast<bool (*)(Mutex*, const Condition&, absl::Time)>(
      Real("_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  return AwaitAnnotated(this, cond, [&](const Condition& c) { return real(this, c, deadline); });
}

ABSL_NAMESPACE_END
}  // namespace absl

// 2. C11 threads on the pthread functions TSan intercepts. Return values as C11 gives them.
static_assert(sizeof(thrd_t) == sizeof(pthread_t));
static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t));
static_assert(alignof(mtx_t) >= alignof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t));
static_assert(alignof(cnd_t) >= alignof(pthread_cond_t));

namespace {

struct ThreadStart {
  thrd_start_t func;
  void* arg;
};

void* RunThread(void* p) {
  const ThreadStart start = *static_cast<ThreadStart*>(p);
  delete static_cast<ThreadStart*>(p);
  // thrd_join reads the int back as glibc's does (thrd_exit passes it through pthread_exit).
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

pthread_mutex_t* P(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* P(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }
int C11(int err) { return err == 0 ? thrd_success : err == ETIMEDOUT ? thrd_timedout
                                      : err == EBUSY ? thrd_busy : err == ENOMEM ? thrd_nomem
                                      : thrd_error; }

}  // namespace

extern "C" {

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* start = new (std::nothrow) ThreadStart{func, arg};
  if (start == nullptr) return thrd_nomem;
  pthread_t t;
  const int err = pthread_create(&t, nullptr, RunThread, start);
  if (err != 0) {
    delete start;
    return C11(err);
  }
  *thr = t;
  return thrd_success;
}

int thrd_join(thrd_t thr, int* res) {
  void* value = nullptr;
  if (pthread_join(thr, &value) != 0) return thrd_error;
  if (res != nullptr) *res = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return thrd_success;
}

int thrd_detach(thrd_t thr) { return pthread_detach(thr) == 0 ? thrd_success : thrd_error; }

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  const int err = pthread_mutex_init(P(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return C11(err);
}
int mtx_lock(mtx_t* m) { return C11(pthread_mutex_lock(P(m))); }
int mtx_trylock(mtx_t* m) { return C11(pthread_mutex_trylock(P(m))); }
int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict ts) {
  return C11(pthread_mutex_timedlock(P(m), ts));
}
int mtx_unlock(mtx_t* m) { return C11(pthread_mutex_unlock(P(m))); }
void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(P(m)); }

int cnd_init(cnd_t* c) { return C11(pthread_cond_init(P(c), nullptr)); }
int cnd_signal(cnd_t* c) { return C11(pthread_cond_signal(P(c))); }
int cnd_broadcast(cnd_t* c) { return C11(pthread_cond_broadcast(P(c))); }
int cnd_wait(cnd_t* c, mtx_t* m) { return C11(pthread_cond_wait(P(c), P(m))); }
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m,
                  const struct timespec* __restrict ts) {
  return C11(pthread_cond_timedwait(P(c), P(m), ts));
}
void cnd_destroy(cnd_t* c) { pthread_cond_destroy(P(c)); }

}  // extern "C"
