// What an operator sees of a running tend process through Prometheus: the metric names, their
// meaning and units (this file and metrics.cc are that contract; docs/design.md,
// "Observability", lists them), and the HTTP endpoint that serves them.
//
// The counters already kept by the engine, storage, dispatcher, gRPC server and sink are read at
// each scrape and turned into metric families (a custom collector, as Prometheus' "Writing
// exporters" guide advises for state kept elsewhere): the hot path pays for no metric object,
// only for the relaxed counters it always kept. Names follow Prometheus' naming practice: a
// `tend_` prefix, base units (seconds, bytes), `_total` for counters, histograms in seconds,
// and no patient ids or other high-cardinality labels (labels: partition, reason, outcome,
// result, column family, gRPC service, method and code: fixed, small sets).
//
// Thread safety: thread-safe; sources may be added while it is served (the endpoint starts
// before the state directory opens); the sources it reads are thread-safe.
#ifndef TEND_OBSERVE_METRICS_H_
#define TEND_OBSERVE_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace prometheus {
class Exposer;
}

namespace tend {

class Engine;
class Storage;
class Dispatcher;
class GrpcMetrics;
class FullScans;
class SinkService;
class HealthGate;
class Membership;

class MetricsCollector final : public prometheus::Collectable {
 public:
  // A source's place in the collector: the source is read at scrapes until this is destroyed
  // (declare it right after the source, so it goes first). Movable.
  class Registration {
   public:
    Registration() = default;
    Registration(MetricsCollector* collector, int id) : collector_(collector), id_(id) {}
    Registration(Registration&& other) noexcept { *this = std::move(other); }
    Registration& operator=(Registration&& other) noexcept {
      std::swap(collector_, other.collector_);
      std::swap(id_, other.id_);
      return *this;
    }
    ~Registration() {
      if (collector_ != nullptr) collector_->Remove(id_);
    }

   private:
    MetricsCollector* collector_ = nullptr;  // outlives the registration
    int id_ = 0;
  };

  MetricsCollector();
  // Each source is borrowed until its Registration is destroyed.
  // The engine's counters, partitions and cache (`cache_max_bytes`: its configured bound).
  [[nodiscard]] Registration AddEngine(const Engine* engine, int64_t cache_max_bytes);
  // RocksDB's sizes and write stalls, the outbox's size, the timers kept.
  [[nodiscard]] Registration AddStorage(const Storage* storage);
  [[nodiscard]] Registration AddDispatcher(const Dispatcher* dispatcher);
  [[nodiscard]] Registration AddGrpc(const GrpcMetrics* grpc);
  // The reads of every patient (CohortStats and a gathered one's parts): running, the bound,
  // refused and stopped.
  [[nodiscard]] Registration AddCohortScans(const FullScans* scans);
  [[nodiscard]] Registration AddSink(const SinkService* sink);
  [[nodiscard]] Registration AddHealth(const HealthGate* health);
  // The member records heard and ignored, and the live instances (with --advertise).
  [[nodiscard]] Registration AddMembership(const Membership* membership);
  // tend_state_refused: 1 while the process serves only to say its state directory was refused.
  void SetStateRefused(bool refused) { state_refused_.store(refused); }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  using Part = std::function<void(std::vector<prometheus::MetricFamily>*)>;
  Registration Add(Part part) {
    absl::MutexLock lock(&mu_);
    parts_.emplace(++last_id_, std::move(part));
    return Registration(this, last_id_);
  }
  void Remove(int id) {
    absl::MutexLock lock(&mu_);  // waits for a scrape reading the source
    parts_.erase(id);
  }
  mutable absl::Mutex mu_;
  std::map<int, Part> parts_ ABSL_GUARDED_BY(mu_);  // in the order added
  int last_id_ ABSL_GUARDED_BY(mu_) = 0;
  Registration own_;  // the process-wide metrics
  std::atomic<bool> state_refused_{false};
};

// Serves `collector` as the Prometheus text format at http://ADDRESS/metrics (prometheus-cpp's
// Exposer, civetweb underneath). Thread safety: thread-safe.
class MetricsEndpoint {
 public:
  // `listen`: HOST:PORT (port 0: any free port). kUnavailable naming the address when it cannot
  // be bound; kInvalidArgument when it is not HOST:PORT.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen, std::shared_ptr<MetricsCollector> collector);
  ~MetricsEndpoint();
  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;
  std::shared_ptr<MetricsCollector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace tend

#endif  // TEND_OBSERVE_METRICS_H_
