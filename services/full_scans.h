// Full reads of the state on behalf of a caller (CohortStats, and an instance's part of a
// gathered one, Peer.CohortPart): how many run at once in a process, and stopping one whose
// caller has gone.
//
// A full read views every patient of the directory: seconds to minutes at a million patients,
// on a core the engine's fold could use. Any holder of a query token may start one, and gRPC
// runs up to ServerOptions::max_threads calls at once, so without a bound a few dozen concurrent
// CohortStats took every core and held that many RocksDB iterators (and the memtables and files
// they pin) open. Beyond the bound a call is refused at once with RESOURCE_EXHAUSTED and a retry
// hint; it never waits, so two instances gathering from each other cannot deadlock.
//
// Thread safety: FullScans is thread-safe; a Slot belongs to the call that took it.
#ifndef TEND_SERVICES_FULL_SCANS_H_
#define TEND_SERVICES_FULL_SCANS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace tend {

class FullScans {
 public:
  // The default bound, `tend engine --max-cohort-scans`: the two cores of a small host.
  static constexpr int kDefaultMax = 2;

  // `max` >= 1.
  explicit FullScans(int max = kDefaultMax) : max_(max) {}
  FullScans(const FullScans&) = delete;
  FullScans& operator=(const FullScans&) = delete;

  // One running read; released when destroyed. Must not outlive its FullScans.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (owner_ != nullptr) owner_->running_.fetch_sub(1, std::memory_order_acq_rel);
    }

   private:
    friend class FullScans;
    explicit Slot(FullScans* owner) : owner_(owner) {}
    FullScans* owner_;
  };

  // A slot, or nullopt when `max` reads are running (and the refusal counted).
  std::optional<Slot> TryTake();

  // The call's answer when TryTake gave none: RESOURCE_EXHAUSTED naming the bound, with gRPC's
  // retry pushback (one second) in `context`'s trailers.
  grpc::Status Refuse(grpc::ServerContext* context) const;

  // Whether the call is still wanted: kCancelled once the caller cancelled it (or went away),
  // kDeadlineExceeded once its deadline has passed, else OK.
  static absl::Status CallStatus(const grpc::ServerContext& context);
  // What a read calls between patients (storage/views.h AccumulateCohort's `check`): kAborted
  // once `abandoned` (may be null) is set - a gathered call whose answer another instance's part
  // already decided -, else CallStatus; counting each read it stops (each answer not OK) in
  // stopped().
  absl::Status Check(const grpc::ServerContext& context,
                     const std::atomic<bool>* abandoned = nullptr);

  int max() const { return max_; }
  int running() const { return running_.load(std::memory_order_acquire); }
  int64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  // Reads stopped by Check.
  int64_t stopped() const { return stopped_.load(std::memory_order_relaxed); }

 private:
  const int max_;
  std::atomic<int> running_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> stopped_{0};
};

}  // namespace tend

#endif  // TEND_SERVICES_FULL_SCANS_H_
