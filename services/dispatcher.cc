#include "services/dispatcher.h"

#include <vector>

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


absl::StatusOr<std::unique_ptr<Dispatcher>> Dispatcher::Start(const DispatcherOptions& options,
                                                               Storage* storage) {
  std::unique_ptr<Dispatcher> d(new Dispatcher(options, storage));
  auto client = SinkClient::Create(options.sink);
  if (!client.ok()) return client.status();
  d->client_ = *std::move(client);
  d->thread_ = std::thread([p = d.get()] { p->Loop(); });
  return d;
}

Dispatcher::~Dispatcher() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

DispatcherStats Dispatcher::stats() const {
  return {delivered_.load(), duplicates_.load(), expired_.load(), rejected_.load()};
}

void Dispatcher::Loop() {
  struct Due {
    int32_t partition;
    v1::ReminderCommand command;
  };
  while (!stop_.load()) {
    // Commands whose time has come; the outbox is small (commands leave it within moments).
    std::vector<Due> due;
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    absl::Status s = storage_->ForEachCommand([&](int32_t partition, const v1::ReminderCommand& c) {
      if (c.not_before().seconds() <= now_s) due.push_back({partition, c});
      return absl::OkStatus();
    });
    if (!s.ok()) TEND_LOG_ERROR("dispatcher: reading the outbox: %s", s.ToString());
    int64_t expired_in_pass = 0;
    for (const Due& d : due) {
      const DeliveryResult r = client_->Deliver(d.command, stop_);
      v1::Decision::Reason dropped = v1::Decision::REASON_UNSPECIFIED;  // delivered: none
      switch (r.outcome) {
        case DeliveryOutcome::kStopped:
          return;  // stays in the outbox for the next start
        case DeliveryOutcome::kDelivered:
          ++delivered_;
          break;
        case DeliveryOutcome::kDuplicate:
          ++duplicates_;
          break;
        case DeliveryOutcome::kExpired:
          ++expired_;
          dropped = v1::Decision::EXPIRED;
          // One line per pass, not per command: a backlog of stale commands (an engine that
          // was down for a day) would otherwise flood the log.
          if (expired_in_pass++ == 0) {
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
      const absl::Status del =
          dropped != v1::Decision::REASON_UNSPECIFIED
              ? storage_->DropCommand(d.partition, d.command, DroppedDecision(d.command, r, dropped))
              : storage_->DeleteCommand(d.partition, d.command.command_id());
      if (!del.ok()) {
        TEND_LOG_ERROR("dispatcher: %s", del.ToString());
      }
    }
    if (expired_in_pass > 1) {
      TEND_LOG_WARN("dispatcher: %d commands in all expired undelivered in this pass; dropped and "
                    "recorded for Explain",
                    expired_in_pass);
    }
    if (due.empty()) {
      const absl::Time until = absl::Now() + options_.poll_interval;
      while (!stop_.load() && absl::Now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
}

}  // namespace tend
