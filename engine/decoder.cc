#include "engine/decoder.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/thread_name.h"
#include "kafka/consumer.h"
#include "storage/format.h"

namespace tend {

void CheckRecord(const LogRecord& record, const CheckOptions& options, absl::Time wall_time,
                 google::protobuf::Arena* arena, CheckedRecord* out) {
  out->event = nullptr;
  out->why = DeadLetterReason::kUndecodable;
  out->tick = false;
  out->skipped = false;
  out->past_end = false;
  out->state_key.clear();
  out->key_hash = 0;
  if (options.start_at && record.timestamp_ms < absl::ToUnixMillis(*options.start_at)) {
    out->status = absl::OkStatus();
    out->skipped = true;
    return;
  }
  if (options.end_at && record.timestamp_ms > absl::ToUnixMillis(*options.end_at)) {
    out->status = absl::OkStatus();
    out->past_end = true;
    return;
  }
  auto* event = google::protobuf::Arena::CreateMessage<v1::Event>(arena);
  out->status = DecodeEvent(record.value, event);
  if (!out->status.ok()) return;
  out->event = event;
  const bool tick = event->has_clock_tick();
  out->why = DeadLetterReason::kInvalid;
  out->status = tick ? ValidateClockTick(*event, options.validation)
                     : ValidateEvent(*event, options.validation);
  // The clock moves only as far as the log's own time allows (docs/design.md, "Time you can
  // trust"): a record from 2099 is dead-lettered instead of making every patient LOST.
  if (out->status.ok()) {
    out->why = DeadLetterReason::kRecordedAt;
    out->status = CheckRecordedAt(*event, record.timestamp_ms, options.validation);
  }
  if (out->status.ok()) {
    out->why = DeadLetterReason::kTimestamp;
    out->status = CheckRecordTimestamp(record.timestamp_ms, wall_time, options.validation);
  }
  if (out->status.ok() && record.key != event->patient_id()) {
    out->why = DeadLetterReason::kKeyMismatch;
    out->status = absl::InvalidArgumentError(absl::StrCat(
        "record key \"", absl::CHexEscape(record.key), "\" differs from patient_id \"",
        event->patient_id(), "\"; producers must key records by patient_id"));
  }
  if (!out->status.ok()) return;
  out->tick = tick;
  if (!tick) {
    storage_format::SetStateKey(record.partition, event->patient_id(), &out->state_key);
    out->key_hash = StateKeyHash{}(out->state_key);
  }
}

BatchDecoder::BatchDecoder(CheckOptions options)
    : options_(std::move(options)), thread_([this] { Loop(); }) {}

BatchDecoder::~BatchDecoder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  posted_cv_.notify_one();
  thread_.join();
}

void BatchDecoder::Start(const std::vector<LogRecord>& batch, absl::Time wall_time) {
  const size_t n = batch.size();
  if (n > capacity_) {
    ready_ = std::make_unique<std::atomic<bool>[]>(n);
    capacity_ = n;
  }
  for (size_t i = 0; i < n; ++i) ready_[i].store(false, std::memory_order_relaxed);
  if (results_.size() < n) results_.resize(n);
  batch_ = &batch;
  wall_time_ = wall_time;
  next_.store(0, std::memory_order_relaxed);
  if (n >= kMinAhead) {
    {
      std::lock_guard<std::mutex> lock(mu_);  // publishes the above to the thread
      posted_ = true;
    }
    posted_cv_.notify_one();
  }
}

size_t BatchDecoder::CheckUpTo(size_t i, google::protobuf::Arena* arena) {
  const size_t n = batch_->size();
  size_t checked = 0;
  size_t j = next_.load(std::memory_order_relaxed);
  while (j <= i && j < n) {
    // Claims record j unless the other thread did first (then j is reloaded).
    if (next_.compare_exchange_weak(j, j + 1, std::memory_order_relaxed)) {
      CheckRecord((*batch_)[j], options_, wall_time_, arena, &results_[j]);
      ready_[j].store(true, std::memory_order_release);
      ++checked;
      ++j;
    }
  }
  return checked;
}

const CheckedRecord& BatchDecoder::Get(size_t i) {
  if (!ready_[i].load(std::memory_order_acquire)) {
    CheckUpTo(i, &caller_arena_.arena);
    // Claimed by the thread, which is checking it now: a record's parse and checks take about a
    // microsecond, unless the thread lost its core.
    for (int spins = 0; !ready_[i].load(std::memory_order_acquire); ++spins) {
      if (spins >= 64) std::this_thread::yield();
    }
  }
  return results_[i];
}

void BatchDecoder::Finish() {
  if (batch_ == nullptr) return;
  // The thread claims no more (next_ never passes the batch's size): when the engine stops in
  // the middle of a batch, it does not check the rest.
  next_.store(batch_->size(), std::memory_order_relaxed);
  {
    std::unique_lock<std::mutex> lock(mu_);
    posted_ = false;  // not taken yet: withdrawn
    idle_cv_.wait(lock, [this] { return !busy_; });
  }
  in_arena_ += batch_->size();
  batch_ = nullptr;
  if (in_arena_ >= static_cast<size_t>(ConsumerSource::kMaxBatch)) {
    // The batch's events are folded; nothing refers to them any more.
    caller_arena_.arena.Reset();
    in_arena_ = 0;
    std::lock_guard<std::mutex> lock(mu_);
    reset_thread_arena_ = true;  // by the thread itself, before its next batch
  }
}

void BatchDecoder::Loop() {
  SetThreadName("tend-decode");
  // An arena's initial block serves the thread that built or last reset it: this one, for its
  // arena (the arena was built on the caller's thread).
  thread_arena_.arena.Reset();
  for (;;) {
    bool reset = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      posted_cv_.wait(lock, [this] { return posted_ || stop_; });
      if (stop_) return;
      posted_ = false;
      busy_ = true;
      std::swap(reset, reset_thread_arena_);
    }
    if (reset) thread_arena_.arena.Reset();  // the events of earlier batches are all folded
    const size_t checked = CheckUpTo(batch_->size(), &thread_arena_.arena);
    checked_by_thread_.fetch_add(static_cast<int64_t>(checked), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    idle_cv_.notify_one();
  }
}

}  // namespace tend
