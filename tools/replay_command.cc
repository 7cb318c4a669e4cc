// tend replay: rebuild (tools/replay.h Replay), swap (SwapState) and backtest
// (tools/backtest.h Backtest).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/engine_config.h"
#include "tools/backtest.h"
#include "tools/replay.h"
#include "tools/subcommand.h"

namespace tend {
namespace {

struct ReplayFlags {
  ReplayOptions replay;
  KafkaFlags kafka;
  std::string config, rules, baseline, diff, swap_db, from, until;
  bool swap = false;
};

int Swap(const ReplayFlags& f) {
  if (!f.from.empty() || !f.until.empty()) {
    return Exit(absl::InvalidArgumentError("--swap takes --db and --to only (--from and --until "
                                           "are for the replay that made --to)"),
                "replay");
  }
  if (f.swap_db.empty() || f.replay.to_dir.empty()) {
    return Exit(absl::InvalidArgumentError("--swap needs --db LIVE_DIR and --to REBUILT_DIR"),
                "replay");
  }
  auto swapped = SwapState(f.swap_db, f.replay.to_dir);
  if (!swapped.ok()) return Exit(swapped.status(), "replay");
  std::cerr << "swapped: " << f.swap_db << " now holds the rebuilt state; "
            << swapped->commands_carried << " undelivered commands carried over from the old "
            << "outbox; the previous state is in " << swapped->previous_dir
            << ". Start the engine on " << f.swap_db << " again. To undo (engine stopped): "
            << "mv " << f.swap_db << " " << f.replay.to_dir << " && mv " << swapped->previous_dir
            << " " << f.swap_db << std::endl;
  return 0;
}

int RunBacktest(const ReplayFlags& f, const std::atomic<bool>& stop) {
  const ReplayOptions& replay = f.replay;
  if (f.baseline.empty() || f.diff.empty() || !replay.engine.rules) {
    return Exit(absl::InvalidArgumentError("a backtest needs --rules NEW.yaml, --baseline "
                                           "CURRENT.yaml and --diff OUT"),
                "replay");
  }
  if (!replay.to_dir.empty() || !replay.commands_out.empty()) {
    return Exit(absl::InvalidArgumentError("a backtest keeps no state: --to and "
                                           "--commands-out are for a plain replay"),
                "replay");
  }
  auto baseline = LoadRulesFlag(f.baseline);
  if (!baseline.ok()) return Exit(baseline.status(), "replay");
  BacktestOptions backtest;
  backtest.replay = replay;
  backtest.baseline = *std::move(baseline);
  backtest.candidate = replay.engine.rules;
  backtest.diff_out = f.diff;
  auto diff = Backtest(backtest, stop, std::cerr);
  if (!diff.ok()) return Exit(diff.status(), "replay");
  WriteTotals(*diff, std::cout);
  std::cerr << "changes per patient in " << f.diff << std::endl;
  return 0;
}

int Run(ReplayFlags& f, const std::atomic<bool>& stop) {
  if (f.swap) return Swap(f);
  ReplayOptions& replay = f.replay;
  if (replay.engine.brokers.empty() == replay.archive_path.empty()) {
    return Exit(absl::InvalidArgumentError(
                    "give --brokers (replay the topic) or --archive FILE (replay an archive)"),
                "replay");
  }
  auto config = LoadEngineConfig(f.config, &replay.engine.validation);
  if (!config.ok()) return Exit(config.status(), "replay");
  replay.engine.projections = *std::move(config);
  auto rules = LoadRulesFlag(f.rules);
  if (!rules.ok()) return Exit(rules.status(), "replay");
  replay.engine.rules = *std::move(rules);
  if (absl::Status s = ParseKafkaFlags(f.kafka, &replay.engine.kafka); !s.ok()) {
    return Exit(s, "replay");
  }
  replay.progress_bar = isatty(fileno(stderr)) != 0;
  if (absl::Status s = ParseOptionalTimeFlag("--from", f.from, &replay.engine.start_at); !s.ok()) {
    return Exit(s, "replay");
  }
  if (absl::Status s = ParseOptionalTimeFlag("--until", f.until, &replay.engine.end_at);
      !s.ok()) {
    return Exit(s, "replay");
  }
  if (replay.engine.start_at && replay.engine.end_at &&
      *replay.engine.end_at < *replay.engine.start_at) {
    return Exit(absl::InvalidArgumentError("--until is before --from: nothing to fold"), "replay");
  }
  if (!f.baseline.empty() || !f.diff.empty()) return RunBacktest(f, stop);
  if (replay.to_dir.empty()) {
    return Exit(absl::InvalidArgumentError("--to DIR is required (or --baseline and --diff "
                                           "for a backtest)"),
                "replay");
  }
  auto report = Replay(replay, stop, std::cerr);
  if (!report.ok()) return Exit(report.status(), "replay");
  std::cerr << absl::StrFormat(
      "replayed %d records into %s in %.1f s (%.0f records/s): %d events applied, %d "
      "duplicates, %d bad records skipped, %d timers fired, %d decisions, %d commands (not "
      "sent), %d commits, %d cache misses%s%s\n",
      report->stats.records, replay.to_dir, absl::ToDoubleSeconds(report->elapsed),
      report->records_per_second, report->stats.events_applied, report->stats.duplicates,
      report->stats.dead_lettered, report->stats.timers_fired, report->stats.decisions,
      report->stats.commands, report->stats.commits, report->stats.cache_misses,
      replay.commands_out.empty() ? "" : absl::StrCat("; commands in ", replay.commands_out),
      replay.engine.end_at
          ? absl::StrCat("; ", report->stats.records_past_end, " records after --until ", f.until,
                         " not folded (a view of the past: tend dump and tend report read it, "
                         "no engine runs on it)")
          : "");
  return 0;
}

}  // namespace

SubcommandRun AddReplayCommand(CLI::App* app) {
  auto f = std::make_shared<ReplayFlags>();
  ReplayOptions& replay = f->replay;
  replay.engine.leave_cache_at_exit = true;  // the process exits when the replay ends
  auto* cmd = app->add_subcommand(
      "replay", "Rebuild every projection from the log into a NEW state directory (REPLAY mode: "
                "nothing is sent).");
  cmd->add_option("--brokers", replay.engine.brokers, "bootstrap servers (or --archive)");
  cmd->add_option("--archive", replay.archive_path,
                  "replay this archive (tend archive) instead of the topic");
  cmd->add_option("--to", replay.to_dir, "the new state directory (must not exist, or be empty)");
  cmd->add_flag("--swap", f->swap,
                "make the finished rebuild --to DIR the state of --db LIVE (the engine on "
                "LIVE must be stopped)");
  cmd->add_option("--db", f->swap_db, "--swap: the live state directory");
  cmd->add_option("--baseline", f->baseline,
                  "backtest: the current rules YAML, compared with --rules (needs --diff)");
  cmd->add_option("--diff", f->diff,
                  "backtest: write the commands added, removed or moved per patient here "
                  "(JSONL); totals per rule go to stdout");
  cmd->add_option("--topic", replay.engine.topic)->capture_default_str();
  cmd->add_option("--rules", f->rules, "rules YAML: decide as the live engine would");
  cmd->add_option("--config", f->config, "engine config YAML (projection parameters)");
  cmd->add_option("--from", f->from,
                  "RFC 3339 time: start each partition at its first record at or after it "
                  "(default: the beginning of the log)");
  cmd->add_option("--until", f->until,
                  "RFC 3339 time: fold only the records timestamped at or before it - the state "
                  "as it stood then, for tend dump and tend report (no engine runs on it); in a "
                  "backtest, the commands decided up to then");
  cmd->add_option("--commands-out", replay.commands_out,
                  "write the commands the replay decided here (JSONL; none is sent)");
  cmd->add_option("--fold-threads", replay.fold_threads,
                  "--archive: engines folding at once, each a range of the partitions on a "
                  "thread of its own, sharing --cache-mb (the same state as with one; at most "
                  "the archive's partitions)")
      ->check(CLI::Range(1, kMaxFoldThreads))
      ->capture_default_str();
  AddKafkaFlag(cmd, &f->kafka);
  AddCacheFlag(cmd, &replay.engine);
  // Up to an hour: a replay that fails is started again from nothing, so a long interval loses
  // nothing; a fixed cadence in records makes its work the same from run to run, whatever the
  // machine's speed (bench/instructions).
  AddCommitFlags(cmd, &replay.engine, 3'600'000);
  return [f](const std::atomic<bool>& stop) { return Run(*f, stop); };
}

}  // namespace tend
