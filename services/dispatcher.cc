#include "services/dispatcher.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "engine/log.h"

namespace tend {
namespace {

std::string DropDetail(const DeliveryResult& r) {
  return r.attempts == 0 ? std::string("expired before the first delivery attempt")
                         : absl::StrCat(r.attempts, " attempts; last error: ", r.last_error);
}

// For Explain: a command the dispatcher removed undelivered, and why. Wall-clock `at`: dispatching
// is LIVE-only and not part of replays.
v1::Decision DroppedDecision(const v1::ReminderCommand& c, const DeliveryResult& r,
                             v1::Decision::Reason reason) {
  v1::Decision d;
  d.set_rule_id(c.rule_id());
  d.set_rule_version(c.rule_version());
  d.set_patient_id(c.patient_id());
  d.mutable_at()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  d.set_outcome(v1::Decision::DROPPED);
  d.set_reason(reason);
  d.set_command_id(c.command_id());
  d.set_trigger(c.trigger());
  d.set_detail(DropDetail(r));
  return d;
}

}  // namespace


// Runs fn(lane) for lanes [0, n) on a fixed set of helper threads and the caller, and returns
// when every lane is done.
class Dispatcher::Lanes {
 public:
  explicit Lanes(int helpers) {
    for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { Helper(); });
  }
  ~Lanes() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    start_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Run(int n, const std::function<void(int)>& fn) {
    std::unique_lock<std::mutex> lock(mu_);
    fn_ = &fn;
    lanes_ = n;
    next_ = finished_ = 0;
    ++round_;
    if (n > 1) start_.notify_all();
    Work(lock);
    done_.wait(lock, [&] { return finished_ == lanes_; });
    fn_ = nullptr;
  }

 private:
  void Work(std::unique_lock<std::mutex>& lock) {
    while (next_ < lanes_) {
      const int lane = next_++;
      lock.unlock();
      (*fn_)(lane);
      lock.lock();
      if (++finished_ == lanes_) done_.notify_all();
    }
  }
  void Helper() {
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t seen = 0;
    while (true) {
      start_.wait(lock, [&] { return stop_ || round_ != seen; });
      if (stop_) return;
      seen = round_;
      Work(lock);
    }
  }

  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* fn_ = nullptr;
  int lanes_ = 0, next_ = 0, finished_ = 0;
  uint64_t round_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

struct Dispatcher::Due {
  int32_t partition;
  v1::ReminderCommand command;
  DeliveryResult result;
};

Dispatcher::Dispatcher(const DispatcherOptions& options, Storage* storage)
    : options_(options), storage_(storage) {}

absl::StatusOr<std::unique_ptr<Dispatcher>> Dispatcher::Start(const DispatcherOptions& options,
                                                               Storage* storage) {
  if (options.max_in_flight < 1 || options.round_limit < 1) {
    return absl::InvalidArgumentError("dispatcher: max_in_flight and round_limit must be >= 1");
  }
  std::unique_ptr<Dispatcher> d(new Dispatcher(options, storage));
  auto client = SinkClient::Create(options.sink);
  if (!client.ok()) return client.status();
  d->client_ = *std::move(client);
  d->lanes_ = std::make_unique<Lanes>(options.max_in_flight - 1);
  d->thread_ = std::thread([p = d.get()] { p->Loop(); });
  return d;
}

Dispatcher::~Dispatcher() {
  stop_.store(true);
  storage_->InterruptOutboxWait();
  if (thread_.joinable()) thread_.join();
}

DispatcherStats Dispatcher::stats() const {
  return {delivered_.load(), duplicates_.load(), expired_.load(), rejected_.load(), read_.load()};
}

void Dispatcher::Loop() {
  // Per partition with commands not yet delivered: the earliest not_before that may still have
  // some. Everything before it in the partition's outbox is gone (acknowledged or dropped).
  OutboxArrivals cursors;
  bool started = false;
  std::vector<Due> due;
  while (!stop_.load()) {
    const absl::Time wake = absl::Now() + options_.poll_interval;
    if (!started) {
      // Taken before the heads are read: a commit in between is in both, never in neither.
      storage_->TakeOutboxArrivals();
      const absl::Status s = storage_->OutboxHeads(&cursors);
      if (s.ok()) {
        started = true;
      } else {
        TEND_LOG_ERROR("dispatcher: reading the outbox: %s", s.ToString());
      }
    }
    if (started) {
      for (const auto& [partition, not_before_s] : storage_->TakeOutboxArrivals()) {
        auto [it, added] = cursors.try_emplace(partition, not_before_s);
        if (!added) it->second = std::min(it->second, not_before_s);
      }
      const int64_t now_s = absl::ToUnixSeconds(absl::Now());
      due.clear();
      // A round shares its limit among the partitions with due commands, so one partition's
      // backlog does not hold up the others' new commands.
      size_t due_partitions = 0;
      for (const auto& [partition, from_s] : cursors) due_partitions += from_s <= now_s;
      const size_t share =
          std::max<size_t>(64, options_.round_limit / std::max<size_t>(1, due_partitions));
      for (auto& [partition, from_s] : cursors) {
        if (from_s > now_s || due.size() >= options_.round_limit) continue;
        const size_t before = due.size();
        const size_t limit = std::min(share, options_.round_limit - before);
        const int32_t p = partition;
        const absl::Status s = storage_->ForEachDueCommand(
            p, from_s, now_s, limit, [&](const v1::ReminderCommand& c) {
              due.push_back({p, c, {}});
              return absl::OkStatus();
            });
        if (!s.ok()) {
          TEND_LOG_ERROR("dispatcher: reading the outbox: %s", s.ToString());
          due.resize(before);
          continue;
        }
        // Read to the end of what is due, or (at the limit) up to the last second read: the
        // rest of that second is read again next round.
        from_s = due.size() - before == limit ? due.back().command.not_before().seconds()
                                              : now_s + 1;
      }
      if (!due.empty()) {
        read_ += static_cast<int64_t>(due.size());
        if (!DeliverRound(&due)) return;
        continue;  // more may be due
      }
    }
    storage_->WaitForOutboxArrivals(wake, stop_);
  }
}

bool Dispatcher::DeliverRound(std::vector<Due>* due) {
  // One patient's commands in one lane, in outbox order (partition, not_before, command id).
  const int lanes = static_cast<int>(
      std::min<size_t>(static_cast<size_t>(options_.max_in_flight), due->size()));
  std::vector<std::vector<Due*>> by_lane(lanes);
  for (Due& d : *due) {
    by_lane[absl::HashOf(d.command.patient_id()) % lanes].push_back(&d);
  }
  lanes_->Run(lanes, [&](int lane) {
    for (Due* d : by_lane[lane]) {
      d->result = client_->Deliver(d->command, stop_);
      if (d->result.outcome == DeliveryOutcome::kStopped) return;
    }
  });

  bool stopped = false;
  int64_t expired_in_round = 0;
  std::vector<v1::Decision> drops;
  drops.reserve(due->size());
  std::vector<OutboxRemoval> removals;
  removals.reserve(due->size());
  for (Due& d : *due) {
    const DeliveryResult& r = d.result;
    v1::Decision::Reason dropped = v1::Decision::REASON_UNSPECIFIED;  // delivered: none
    switch (r.outcome) {
      case DeliveryOutcome::kStopped:
        stopped = true;  // stays in the outbox for the next start
        continue;
      case DeliveryOutcome::kDelivered:
        ++delivered_;
        break;
      case DeliveryOutcome::kDuplicate:
        ++duplicates_;
        break;
      case DeliveryOutcome::kExpired:
        ++expired_;
        dropped = v1::Decision::EXPIRED;
        // One line per round, not per command: a backlog of stale commands (an engine that
        // was down for a day) would otherwise flood the log.
        if (expired_in_round++ == 0) {
          TEND_LOG_WARN("dispatcher: command %s (rule %s, patient %s) expired before the sink "
                        "acknowledged it (%s); dropped and recorded for Explain",
                        d.command.command_id(), d.command.rule_id(), d.command.patient_id(),
                        DropDetail(r));
        }
        break;
      case DeliveryOutcome::kRejected:
        ++rejected_;
        dropped = v1::Decision::REJECTED;
        TEND_LOG_ERROR("dispatcher: the sink rejected command %s (rule %s): %s; dropped",
                       d.command.command_id(), d.command.rule_id(), r.last_error);
        break;
    }
    const v1::Decision* decision = nullptr;
    if (dropped != v1::Decision::REASON_UNSPECIFIED) {
      drops.push_back(DroppedDecision(d.command, r, dropped));
      decision = &drops.back();
    }
    removals.push_back({d.partition, &d.command, decision});
  }
  if (expired_in_round > 1) {
    TEND_LOG_WARN("dispatcher: %d commands in all expired undelivered in this round; dropped and "
                  "recorded for Explain",
                  expired_in_round);
  }
  const absl::Status s = storage_->RemoveCommands(removals);
  if (!s.ok()) {
    // They stay in the outbox and go out again after a restart; the sink dedupes them.
    TEND_LOG_ERROR("dispatcher: %s", s.ToString());
  }
  return !stopped;
}

}  // namespace tend
