// The ticker: writes a ClockTick record (tend.v1.Event with a clock_tick body) to every partition
// of the events topic at an interval, so each partition's clock — and with it absence and schedule
// timers — moves on when no patient writes (docs/design.md, "Time is in the log"). Run by `tend
// ticker`, or by the engine in LIVE mode. Several tickers may run: the partition clock is the
// maximum recorded_at seen, so extra ticks change nothing.
//
// Thread safety: Tick() from one thread at a time; Run() blocks its caller.
#ifndef TEND_KAFKA_TICKER_H_
#define TEND_KAFKA_TICKER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"
#include "tend/v1/events.pb.h"

namespace tend {

struct TickerOptions {
  std::string brokers;
  std::string topic = "tend.events";
  absl::Duration interval = absl::Minutes(1);
  // ClockTick.ticker; default "tend-ticker-HOSTNAME". Characters other than [A-Za-z0-9._:-]
  // become '-'. The engines' config must trust it (log.tickers).
  std::string name;
  KafkaProps kafka;  // extra librdkafka properties
  // The clock written into ticks; the wall clock unless a test sets it.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// The tick record for `at`: event_id "tick:<name>:<unix ms>", recorded_at = at, no patient.
v1::Event MakeClockTick(absl::string_view name, absl::Time at);

class Ticker {
 public:
  static absl::StatusOr<std::unique_ptr<Ticker>> Create(const TickerOptions& options);

  // Writes one tick to every partition (the partition count is looked up each time, so added
  // partitions get ticks) and waits for the broker's acknowledgement.
  absl::Status Tick();
  // Ticks every interval until `stop`; returns the first error (the caller may retry).
  absl::Status Run(const std::atomic<bool>& stop);
  int64_t ticks() const { return ticks_; }

 private:
  Ticker(TickerOptions options, std::unique_ptr<Producer> producer)
      : options_(std::move(options)), producer_(std::move(producer)) {}
  TickerOptions options_;
  std::unique_ptr<Producer> producer_;
  int64_t ticks_ = 0;
};

}  // namespace tend

#endif  // TEND_KAFKA_TICKER_H_
