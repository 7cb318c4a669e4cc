// tend ticker: clock ticks to every partition (kafka/ticker.h).
#include "tools/commands.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddTickerCommand(CLI::App* app) {
  struct Flags {
    TickerOptions ticker;
    KafkaFlags kafka;
    int64_t interval_s = absl::ToInt64Seconds(TickerOptions().interval);
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "ticker", "Write a clock tick to every partition of the events topic at an interval, so "
                "absence and schedule timers fire when no patient writes.");
  cmd->add_option("--brokers", f->ticker.brokers, "bootstrap servers")->required();
  cmd->add_option("--topic", f->ticker.topic)->capture_default_str();
  cmd->add_option("--interval-s", f->interval_s, "seconds between ticks")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--name", f->ticker.name, "recorded in each tick (default tend-ticker-HOST; the engine config's log.tickers must match it)");
  AddKafkaFlag(cmd, &f->kafka);
  return [f](const std::atomic<bool>& stop) {
    f->ticker.interval = absl::Seconds(f->interval_s);
    if (absl::Status s = ParseKafkaFlags(f->kafka, &f->ticker.kafka); !s.ok()) {
      return Exit(s, "ticker");
    }
    return Exit(RunTicker(f->ticker, stop), "ticker");
  };
}

}  // namespace tend
