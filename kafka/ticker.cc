#include "kafka/ticker.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "events/codec.h"
#include "base/status.h"
#include "base/time.h"

namespace tend {

v1::Event MakeClockTick(absl::string_view name, absl::Time at) {
  v1::Event e;
  e.set_event_id(absl::StrCat("tick:", name, ":", absl::ToUnixMillis(at)));
  *e.mutable_recorded_at() = ToProtoTime(at);
  e.mutable_clock_tick()->set_ticker(std::string(name));
  return e;
}

absl::StatusOr<std::unique_ptr<Ticker>> Ticker::Create(const TickerOptions& options) {
  if (options.brokers.empty()) return absl::InvalidArgumentError("--brokers is required");
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the tick interval must be > 0 (e.g. 60s)");
  }
  TickerOptions o = options;
  if (o.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    o.name = absl::StrCat("tend-ticker-", host);
  }
  // Ticks carry ids of [A-Za-z0-9._:-]; a host name may have other characters.
  for (char& c : o.name) {
    if (!IsIdChar(c)) c = '-';
  }
  KafkaProps props = {{"bootstrap.servers", o.brokers}};
  props.insert(props.end(), o.kafka.begin(), o.kafka.end());
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create(props));
  return std::unique_ptr<Ticker>(new Ticker(std::move(o), std::move(producer)));
}

absl::Status Ticker::Tick() {
  TEND_ASSIGN_OR_RETURN(int partitions, TopicPartitionCount(producer_->handle(), options_.topic,
                                                            absl::Seconds(10)));
  const v1::Event tick = MakeClockTick(options_.name, options_.now());
  const std::string value = tick.SerializeAsString();
  const auto headers = EventHeaders(tick);
  const int64_t failed_before = producer_->failed();
  for (int p = 0; p < partitions; ++p) {
    TEND_RETURN_IF_ERROR(producer_->Produce(options_.topic, p, "", value, headers, nullptr));
  }
  TEND_RETURN_IF_ERROR(producer_->Flush(absl::Seconds(30)));
  if (producer_->failed() != failed_before) {
    return absl::UnavailableError(absl::StrCat("a clock tick to ", options_.topic,
                                               " was not acknowledged by the brokers"));
  }
  ++ticks_;
  return absl::OkStatus();
}

absl::Status Ticker::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    TEND_RETURN_IF_ERROR(Tick());
    const absl::Time next = absl::Now() + options_.interval;
    while (!stop.load() && absl::Now() < next) absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::OkStatus();
}

}  // namespace tend
