#include "services/dispatcher.h"

#include "absl/strings/str_cat.h"

#include <vector>

#include "engine/log.h"

namespace tend {

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
      v1::Decision dropped;  // for Explain, when the command is dropped undelivered
      dropped.set_rule_id(d.command.rule_id());
      dropped.set_rule_version(d.command.rule_version());
      dropped.set_patient_id(d.command.patient_id());
      dropped.mutable_at()->set_seconds(absl::ToUnixSeconds(absl::Now()));
      dropped.set_outcome(v1::Decision::DROPPED);
      dropped.set_command_id(d.command.command_id());
      dropped.set_trigger(d.command.trigger());
      dropped.set_detail(r.attempts == 0
                             ? std::string("expired before the first delivery attempt")
                             : absl::StrCat(r.attempts, " attempts; last error: ", r.last_error));
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
          dropped.set_reason(v1::Decision::EXPIRED);
          // One line per pass, not per command: a backlog of stale commands (an engine that
          // was down for a day) would otherwise flood the log.
          if (expired_in_pass++ == 0) {
            TEND_LOG_WARN("dispatcher: command %s (rule %s, patient %s) expired before the sink "
                          "acknowledged it (%s); dropped and recorded for Explain",
                          d.command.command_id(), d.command.rule_id(), d.command.patient_id(),
                          dropped.detail());
          }
          break;
        case DeliveryOutcome::kRejected:
          ++rejected_;
          dropped.set_reason(v1::Decision::REJECTED);
          TEND_LOG_ERROR("dispatcher: the sink rejected command %s (rule %s): %s; dropped",
                         d.command.command_id(), d.command.rule_id(), r.last_error);
          break;
      }
      const absl::Status del =
          dropped.reason() != v1::Decision::REASON_UNSPECIFIED
              ? storage_->DropCommand(d.partition, d.command, dropped)
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
