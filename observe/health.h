// Readiness of a running engine, answered by the standard gRPC health service
// (grpc.health.v1.Health, services/server.h) and the tend_serving metric: SERVING once the
// engine has partitions assigned and each is caught up with its log to within `max_lag` records
// (as of the last commit); NOT_SERVING before that (opening and restoring: the patient index
// rebuilt, the partitions' first catch-up), while any partition falls behind, after the engine
// stopped, when the state directory was refused, and while any assigned partition is refused
// (engine/engine.h, "Refused partitions": one that never catches up). A load balancer or an
// orchestrator's readiness probe sends Query traffic only to an instance that answers from
// current state.
//
// Thread safety: thread-safe. The gate looks on its own thread every `interval`.
#ifndef TEND_OBSERVE_HEALTH_H_
#define TEND_OBSERVE_HEALTH_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "auth/auth.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "services/server.h"

namespace tend {

struct HealthOptions {
  // The most records a partition may be behind its log's end (high watermark minus the
  // committed offset) for the engine to serve.
  int64_t max_lag = 10'000;
  absl::Duration interval = absl::Seconds(1);
};

// Serving, and why not, for a set of partitions; pure (tested apart). Empty `why` when serving.
struct Readiness {
  bool serving = false;
  std::string why;
};
Readiness JudgeReadiness(const EngineStats& stats, int64_t max_lag);

class HealthGate {
 public:
  // `engine` and `server` (may be null: metrics only) are borrowed and must outlive the gate.
  // Starts NOT_SERVING and looks every options.interval until Stop().
  HealthGate(const Engine* engine, const RunningServer* server, const HealthOptions& options);
  ~HealthGate();  // Stop()s
  // Stops looking and answers NOT_SERVING from now on (the engine stopped).
  void Stop();

  bool serving() const { return serving_.load(); }
  std::string why() const;

 private:
  void Loop();
  // Answers `r`; `unless_stopped`: not once Stop() has (the loop's answers).
  void Set(const Readiness& r, bool unless_stopped);

  const Engine* const engine_;
  const RunningServer* const server_;
  const HealthOptions options_;
  std::atomic<bool> serving_{false};
  absl::Mutex set_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::string why_ ABSL_GUARDED_BY(mu_) = "starting";
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members it uses
};

// Asks the health service at `target` (host:port) about `service` ("" : the server as a whole):
// true when it answers SERVING, false for NOT_SERVING. kUnavailable when it cannot be reached
// within `timeout`; kNotFound when it knows no such service; other codes as the server answered.
absl::StatusOr<bool> CheckHealth(const std::string& target, const ClientSecurity& security,
                                 const std::string& service, absl::Duration timeout);

}  // namespace tend

#endif  // TEND_OBSERVE_HEALTH_H_
