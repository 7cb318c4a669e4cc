#include "dispatch/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/thread_name.h"

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
    SetThreadName("tend-deliver");
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
  bool held = false;  // not attempted: an earlier command of the patient failed in this round
};

namespace {

// Retries held in memory at most, as a multiple of round_limit: beyond it, due commands wait in
// the outbox (a sink down for hours must not pull the whole backlog into memory).
constexpr size_t kRetryRounds = 16;

// The wait before reading an unreadable partition's outbox again: 1 s, doubling, at most 5 min.
absl::Duration ReadBackoff(int attempts) {
  return std::min(absl::Minutes(5), absl::Seconds(1) * (int64_t{1} << std::min(attempts - 1, 9)));
}

}  // namespace

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
  DispatcherStats s;
  s.delivered = delivered_.load();
  s.duplicates = duplicates_.load();
  s.expired = expired_.load();
  s.rejected = rejected_.load();
  s.read = read_.load();
  s.retrying = retrying_.load();
  s.passes = passes_.load();
  s.read_errors = read_errors_.load();
  s.failed_attempts = failed_attempts_.load();
  s.attempt_seconds = attempt_seconds_.Read();
  if (const int64_t due_s = oldest_due_s_.load();
      due_s != std::numeric_limits<int64_t>::max()) {
    s.oldest_due = absl::FromUnixSeconds(due_s);
  }
  absl::MutexLock lock(&read_error_mu_);
  s.unreadable_partitions = unreadable_;
  s.read_error = read_error_;
  return s;
}

bool Dispatcher::MayRead(int32_t partition, absl::Time now) const {
  auto it = read_failures_.find(partition);
  return it == read_failures_.end() || it->second.next_at <= now;
}

void Dispatcher::ReadOutcome(int32_t partition, absl::Time now, const absl::Status& status) {
  const std::string what =
      partition < 0 ? std::string("the outbox") : absl::StrCat("partition ", partition, "'s outbox");
  if (status.ok()) {
    if (read_failures_.erase(partition) > 0) {
      TEND_LOG_INFO("dispatcher: %s is readable again", what);
      // The status line names a partition that still fails, if any.
      absl::MutexLock lock(&read_error_mu_);
      unreadable_ = static_cast<int64_t>(read_failures_.size());
      read_error_ = read_failures_.empty() ? "" : read_failures_.begin()->second.error;
    }
    return;
  }
  ReadFailure& f = read_failures_[partition];
  ++f.attempts;
  const absl::Duration wait = ReadBackoff(f.attempts);
  f.next_at = now + wait;
  f.error = absl::StrCat(what, ": ", status.message());
  ++read_errors_;
  {
    absl::MutexLock lock(&read_error_mu_);
    unreadable_ = static_cast<int64_t>(read_failures_.size());
    read_error_ = f.error;
  }
  // One line per attempt: the backoff paces them (about ten in the first ten minutes, then one
  // every five).
  TEND_LOG_ERROR(
      "dispatcher: reading %s failed (attempt %d; next in %s): %s. Its commands wait, the other "
      "partitions' go on. A damaged record does not heal: restore the state directory from a "
      "backup, or rebuild it from the log (tend replay)",
      what, f.attempts, absl::FormatDuration(wait), status.ToString());
}

void Dispatcher::Loop() {
  SetThreadName("tend-dispatch");
  // Per partition with commands not yet read: the earliest not_before that may still have
  // some. Everything before it in the partition's outbox is gone (acknowledged or dropped) or
  // waiting in retries_.
  OutboxArrivals cursors;
  bool started = false;
  std::vector<Due> due;
  while (!stop_.load()) {
    const absl::Time now = absl::Now();
    absl::Time wake = now + options_.poll_interval;
    if (!started && MayRead(-1, now)) {
      // Taken before the heads are read: a commit in between is in both, never in neither.
      storage_->TakeOutboxArrivals();
      const absl::Status s = storage_->OutboxHeads(&cursors);
      ReadOutcome(-1, now, s);
      started = s.ok();
    }
    if (started) {
      for (const auto& [partition, not_before_s] : storage_->TakeOutboxArrivals()) {
        auto [it, added] = cursors.try_emplace(partition, not_before_s);
        if (!added) it->second = std::min(it->second, not_before_s);
      }
      GatherRound(now, &cursors, &due);
      if (!due.empty()) {
        if (!DeliverRound(&due)) return;
        continue;  // more may be due
      }
      for (const auto& [id, r] : retries_) wake = std::min(wake, r.next_at);
    }
    ++passes_;
    storage_->WaitForOutboxArrivals(wake, stop_);
  }
}

void Dispatcher::GatherRound(absl::Time now, OutboxArrivals* cursors, std::vector<Due>* due) {
  due->clear();
  if (options_.owns) {
    // Partitions that moved away: their retries are let go (the new owner delivers them); the
    // ones that came back are read again from the start of their outbox.
    for (auto it = retries_.begin(); it != retries_.end();) {
      const int32_t p = it->second.partition;
      if (options_.owns(p)) {
        ++it;
        continue;
      }
      unowned_.insert(p);
      retries_.erase(it++);
    }
    for (auto& [partition, from_s] : *cursors) {
      if (!options_.owns(partition)) {
        unowned_.insert(partition);
      } else if (unowned_.erase(partition) > 0) {
        from_s = 0;
      }
    }
    for (auto it = unowned_.begin(); it != unowned_.end();) {
      // Owned again with nothing arrived since: read from the start too.
      if (options_.owns(*it) && !cursors->contains(*it)) {
        cursors->emplace(*it, 0);
        unowned_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  // Retries whose time has come; patients with one still waiting hold their new commands back.
  absl::flat_hash_map<std::string, absl::Time> waiting;  // patient -> its earliest next attempt
  for (auto& [id, r] : retries_) {
    if (r.next_at <= now && due->size() < options_.round_limit) {
      due->push_back({r.partition, r.command, {}, false});
    } else {
      auto [it, added] = waiting.try_emplace(r.command.patient_id(), r.next_at);
      if (!added) it->second = std::min(it->second, r.next_at);
    }
  }
  // New commands, while the retries kept in memory stay bounded.
  if (retries_.size() < kRetryRounds * options_.round_limit) {
    const int64_t now_s = absl::ToUnixSeconds(now);
    // A round shares its limit among the partitions with due commands, so one partition's
    // backlog does not hold up the others' new commands.
    size_t due_partitions = 0;
    for (const auto& [partition, from_s] : *cursors) {
      due_partitions += from_s <= now_s && MayRead(partition, now) && !unowned_.contains(partition);
    }
    const size_t share =
        std::max<size_t>(64, options_.round_limit / std::max<size_t>(1, due_partitions));
    for (auto& [partition, from_s] : *cursors) {
      if (from_s > now_s || due->size() >= options_.round_limit || !MayRead(partition, now) ||
          unowned_.contains(partition)) {
        continue;
      }
      const size_t limit = std::min(share, options_.round_limit - due->size());
      const int32_t p = partition;
      size_t read = 0;
      int64_t last_s = from_s;
      const absl::Status s =
          storage_->ForEachDueCommand(p, from_s, now_s, limit, [&](const v1::ReminderCommand& c) {
            ++read;
            last_s = c.not_before().seconds();
            if (retries_.contains(c.command_id())) return absl::OkStatus();  // gathered above
            if (auto w = waiting.find(c.patient_id()); w != waiting.end()) {
              Retry& r = retries_[c.command_id()];
              r.partition = p;
              r.command = c;
              r.next_at = w->second;
              return absl::OkStatus();
            }
            due->push_back({p, c, {}, false});
            return absl::OkStatus();
          });
      read_ += static_cast<int64_t>(read);
      ReadOutcome(p, now, s);
      if (!s.ok()) continue;  // what was read stays in this round; the rest is read again later
      // Read to the end of what is due, or (at the limit) up to the last second read: the rest
      // of that second is read again next round.
      from_s = read == limit ? last_s : now_s + 1;
    }
  }
  // In outbox order, which each lane keeps for its patients.
  std::sort(due->begin(), due->end(), [](const Due& a, const Due& b) {
    return std::make_tuple(a.partition, a.command.not_before().seconds(),
                           absl::string_view(a.command.command_id())) <
           std::make_tuple(b.partition, b.command.not_before().seconds(),
                           absl::string_view(b.command.command_id()));
  });
  retrying_ = static_cast<int64_t>(retries_.size());
  // The oldest command due and not delivered yet: this round's, a retry's, or (not read yet,
  // at the round's limit or an unreadable partition) at least as old as its cursor.
  const int64_t now_s = absl::ToUnixSeconds(now);
  int64_t oldest_s = std::numeric_limits<int64_t>::max();
  for (const Due& d : *due) oldest_s = std::min(oldest_s, d.command.not_before().seconds());
  for (const auto& [id, r] : retries_) {
    oldest_s = std::min(oldest_s, r.command.not_before().seconds());
  }
  for (const auto& [partition, from_s] : *cursors) {
    if (from_s <= now_s) oldest_s = std::min(oldest_s, from_s);
  }
  oldest_due_s_.store(oldest_s, std::memory_order_relaxed);
}

bool Dispatcher::DeliverRound(std::vector<Due>* due) {
  // One patient's commands in one lane, in outbox order (partition, not_before, command id).
  const int lanes =
      static_cast<int>(std::min<size_t>(static_cast<size_t>(options_.max_in_flight), due->size()));
  std::vector<std::vector<Due*>> by_lane(lanes);
  for (Due& d : *due) {
    by_lane[absl::HashOf(d.command.patient_id()) % lanes].push_back(&d);
  }
  lanes_->Run(lanes, [&](int lane) {
    absl::flat_hash_set<std::string> failed;  // patients whose command failed in this round
    for (Due* d : by_lane[lane]) {
      if (stop_.load()) return;  // the rest stay kStopped
      if (failed.contains(d->command.patient_id())) {
        d->held = true;
        d->result.outcome = DeliveryOutcome::kFailed;
        continue;
      }
      const auto start = std::chrono::steady_clock::now();
      d->result = client_->Attempt(d->command);
      attempt_seconds_.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      if (d->result.outcome == DeliveryOutcome::kFailed) {
        failed.insert(d->command.patient_id());
        failed_attempts_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });

  bool stopped = false;
  int64_t expired_in_round = 0, failed_in_round = 0;
  std::string a_failure;
  std::vector<v1::Decision> drops;
  drops.reserve(due->size());
  std::vector<OutboxRemoval> removals;
  removals.reserve(due->size());
  absl::flat_hash_map<std::string, absl::Time> blocked_until;  // patient -> its failed one's retry
  const absl::Time after = absl::Now();
  for (Due& d : *due) {
    const std::string& id = d.command.command_id();
    auto retry = retries_.find(id);
    // The whole history of the command, for the record of a drop.
    DeliveryResult r = d.result;
    if (retry != retries_.end()) {
      r.attempts += retry->second.attempts;
      if (r.last_error.empty()) r.last_error = retry->second.last_error;
    }
    const bool expired_now = d.command.has_expires_at() &&
                             after >= absl::FromUnixSeconds(d.command.expires_at().seconds());
    if (r.outcome == DeliveryOutcome::kFailed && expired_now) r.outcome = DeliveryOutcome::kExpired;
    v1::Decision::Reason dropped = v1::Decision::REASON_UNSPECIFIED;  // delivered: none
    switch (r.outcome) {
      case DeliveryOutcome::kStopped:
        stopped = true;  // stays in the outbox (and in retries_) for the next round or start
        continue;
      case DeliveryOutcome::kFailed: {
        Retry& next = retry != retries_.end() ? retry->second : retries_[id];
        if (retry == retries_.end()) {
          next.partition = d.partition;
          next.command = d.command;
        }
        next.attempts = r.attempts;
        next.last_error = r.last_error;
        if (d.held) {
          // Retried with the command it waited behind (earlier in the round, so already
          // here), or at once when that one expired meanwhile and left.
          auto b = blocked_until.find(d.command.patient_id());
          next.next_at = b != blocked_until.end() ? b->second : after;
        } else {
          next.next_at = after + client_->RetryWait(next.attempts, rng_);
          blocked_until[d.command.patient_id()] = next.next_at;
          if (failed_in_round++ == 0) {
            a_failure = absl::StrCat(id, " (rule ", d.command.rule_id(), "): ", r.last_error);
          }
        }
        if (d.command.has_expires_at()) {
          next.next_at =
              std::min(next.next_at, absl::FromUnixSeconds(d.command.expires_at().seconds()));
        }
        continue;
      }
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
          TEND_LOG_WARN(
              "dispatcher: command %s (rule %s, patient %s) expired before the sink "
              "acknowledged it (%s); dropped and recorded for Explain",
              id, d.command.rule_id(), d.command.patient_id(), DropDetail(r));
        }
        break;
      case DeliveryOutcome::kRejected:
        ++rejected_;
        dropped = v1::Decision::REJECTED;
        TEND_LOG_ERROR("dispatcher: the sink rejected command %s (rule %s): %s; dropped", id,
                       d.command.rule_id(), r.last_error);
        break;
    }
    if (retry != retries_.end()) retries_.erase(retry);
    const v1::Decision* decision = nullptr;
    if (dropped != v1::Decision::REASON_UNSPECIFIED) {
      drops.push_back(DroppedDecision(d.command, r, dropped));
      decision = &drops.back();
    }
    removals.push_back({d.partition, &d.command, decision});
  }
  if (expired_in_round > 1) {
    TEND_LOG_WARN(
        "dispatcher: %d commands in all expired undelivered in this round; dropped and "
        "recorded for Explain",
        expired_in_round);
  }
  if (failed_in_round > 0 && after - last_failure_log_ >= absl::Seconds(10)) {
    last_failure_log_ = after;
    TEND_LOG_WARN(
        "dispatcher: the sink did not acknowledge %d commands in this round, e.g. %s; "
        "%d commands wait to be retried with backoff, the other patients' go on",
        failed_in_round, a_failure, static_cast<int64_t>(retries_.size()));
  }
  retrying_ = static_cast<int64_t>(retries_.size());
  const absl::Status s = storage_->RemoveCommands(removals);
  if (!s.ok()) {
    // They stay in the outbox and go out again after a restart; the sink dedupes them.
    TEND_LOG_ERROR("dispatcher: %s", s.ToString());
  } else if (options_.on_removed && !removals.empty()) {
    options_.on_removed(removals);
  }
  return !stopped;
}

}  // namespace tend
