// A distribution recorded on a hot path and read by a metrics scrape (observe/): fixed bucket
// upper bounds chosen at construction, a relaxed atomic count per bucket and a running sum. No
// lock: Observe() is a binary search over the bounds and two atomic adds, so the engine's
// committer, the dispatcher's delivery lanes and gRPC handlers record without contending on a
// mutex (prometheus-cpp's own Histogram takes one per observation).
//
// Thread safety: Observe() and Read() may run on any threads at once. A Read() concurrent with
// observations may see an observation in its bucket and not yet in the sum (or the reverse):
// each field is exact, the set of them is a moment's near view, as with any scrape.
#ifndef TEND_BASE_HISTOGRAM_H_
#define TEND_BASE_HISTOGRAM_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace tend {

class Histogram {
 public:
  // `bounds`: the buckets' inclusive upper bounds, strictly increasing (an observation above the
  // last goes to the implicit +Inf bucket).
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
  }

  void Observe(double value) {
    const size_t i = static_cast<size_t>(
        std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    double sum = sum_.load(std::memory_order_relaxed);
    while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
    }
  }

  struct Snapshot {
    std::vector<double> bounds;    // as constructed
    std::vector<uint64_t> counts;  // per bucket (not cumulative), the last the +Inf bucket
    double sum = 0;
    uint64_t count() const {
      uint64_t n = 0;
      for (uint64_t c : counts) n += c;
      return n;
    }
  };
  Snapshot Read() const {
    Snapshot s;
    s.bounds = bounds_;
    s.counts.resize(bounds_.size() + 1);
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

  // Bounds for latencies in seconds, 100 us to 60 s: the range between a RocksDB write of a few
  // keys and a commit held up by a write stall.
  static std::vector<double> SecondsBounds() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
            0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  }
  // Bounds for sizes (records or bytes): powers of 4 from 1 to 4^15 (~1.07e9).
  static std::vector<double> SizeBounds() {
    std::vector<double> b;
    for (double v = 1; v <= 1.1e9; v *= 4) b.push_back(v);
    return b;
  }

 private:
  const std::vector<double> bounds_;
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

}  // namespace tend

#endif  // TEND_BASE_HISTOGRAM_H_
