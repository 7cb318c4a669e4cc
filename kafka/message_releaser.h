// MessageReleaser: frees consumed librdkafka messages off the reading thread. Internal to kafka/
// (the consumer source, kafka/consumer.h).
#ifndef TEND_KAFKA_MESSAGE_RELEASER_H_
#define TEND_KAFKA_MESSAGE_RELEASER_H_

#include <librdkafka/rdkafka.h>

#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tend {

// Destroys consumed messages on its own thread. Freeing a message returns memory that
// librdkafka's fetch thread allocated, which in glibc takes that thread's arena lock: on the
// engine thread this was ~15% of its time, mostly waiting on the lock. Here it overlaps with the
// fold. At most two batches are pending, so memory stays bounded.
// Thread-safe: Release() and Drain() may be called from one producer thread.
class MessageReleaser {
 public:
  MessageReleaser() : thread_([this] { Loop(); }) {}
  ~MessageReleaser() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  // Takes ownership of the messages in `*batch` (which is left empty, with capacity kept when a
  // spare buffer is available). Blocks while two batches are still pending.
  void Release(std::vector<rd_kafka_message_t*>* batch) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](MessageReleaser* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) { return r->pending_.size() < 2; },
        this));
    pending_.push_back(std::move(*batch));
    batch->clear();
    if (!spare_.empty()) {
      *batch = std::move(spare_.back());
      spare_.pop_back();
    }
  }

  // Blocks until every released message is destroyed (before the consumer is closed).
  void Drain() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](MessageReleaser* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
          return r->pending_.empty() && !r->busy_;
        },
        this));
  }

 private:
  void Loop() {
    for (;;) {
      std::vector<rd_kafka_message_t*> batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](MessageReleaser* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
              return r->stop_ || !r->pending_.empty();
            },
            this));
        if (pending_.empty()) return;  // stopping, nothing left
        batch = std::move(pending_.front());
        pending_.erase(pending_.begin());
        busy_ = true;
      }
      for (rd_kafka_message_t* m : batch) rd_kafka_message_destroy(m);
      batch.clear();
      absl::MutexLock lock(&mu_);
      busy_ = false;
      if (spare_.size() < 2) spare_.push_back(std::move(batch));
    }
  }

  absl::Mutex mu_;
  std::vector<std::vector<rd_kafka_message_t*>> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<rd_kafka_message_t*>> spare_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace tend

#endif  // TEND_KAFKA_MESSAGE_RELEASER_H_
