// `tend`: the one binary. Thin: parses flags (CLI11) and calls tools/commands.h.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "engine/config.h"
#include "engine/log.h"
#include "engine/rules.h"
#include "tools/commands.h"
#include "tools/dump_format.h"
#include "tools/backtest.h"
#include "tools/replay.h"
#include "tools/report.h"
#include "tools/signals.h"
#include "tools/temp_dir.h"

namespace {

int Exit(const absl::Status& s, const std::string& command) {
  if (s.ok()) return 0;
  std::cerr << "tend " << command << ": " << s.message() << std::endl;
  return 1;
}

// Parses an RFC 3339 time flag ("2026-01-01T00:00:00Z").
absl::Status ParseTimeFlag(const std::string& flag, const std::string& text, absl::Time* out) {
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, out, &err)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " must be an RFC 3339 time like 2026-01-01T00:00:00Z, got \"", text, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tend;
  CLI::App app{"tend: event-sourced patient-engagement engine"};
  app.require_subcommand(1);
  const std::string topic_default = "tend.events";

  // tend broker
  MockBrokerOptions broker;
  auto* broker_cmd = app.add_subcommand(
      "broker", "In-memory Kafka-protocol broker for development (librdkafka mock cluster, "
                "~5 MiB kept per partition). Prints the bootstrap address first.");
  broker_cmd->add_option("--partitions", broker.partitions, "partitions of the events topic")
      ->capture_default_str();
  broker_cmd->add_option("--port", broker.port,
                         "stable local port forwarded to the mock listener (0: none)")
      ->capture_default_str();
  broker_cmd->add_option("--topic", broker.topic)->capture_default_str();

  // tend engine
  EngineCommandOptions engine;
  std::vector<std::string> kafka_props;
  int64_t commit_ms = absl::ToInt64Milliseconds(engine.engine.commit_interval);
  bool sync = false;
  auto* engine_cmd = app.add_subcommand("engine", "Fold the events topic into a state directory.");
  engine_cmd->add_option("--brokers", engine.engine.brokers, "bootstrap servers")->required();
  engine_cmd->add_option("--db", engine.db_dir, "state directory (RocksDB)")->required();
  engine_cmd->add_option("--grpc-listen", engine.grpc_listen,
                         "serve tend.v1.Ingest and tend.v1.Query here, e.g. 127.0.0.1:7070");
  engine_cmd->add_flag("--exit-when-idle", engine.engine.exit_when_idle,
                       "exit 0 once every assigned partition is folded and committed");
  engine_cmd->add_option("--topic", engine.engine.topic)->capture_default_str();
  engine_cmd->add_option("--dlq-topic", engine.engine.dlq_topic)->capture_default_str();
  engine_cmd->add_option("--group", engine.engine.group_id, "consumer group id")
      ->capture_default_str();
  engine_cmd->add_option("--commit-interval-ms", commit_ms, "commit at least this often")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  engine_cmd->add_option("--commit-max-records", engine.engine.commit_max_records,
                         "commit after this many records")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  engine_cmd->add_flag("--sync", sync, "fsync the WAL on every commit (machine-crash safety)");
  engine_cmd->add_option("--kafka", kafka_props, "extra librdkafka property KEY=VALUE (repeatable)");
  std::string engine_config, engine_rules;
  engine_cmd->add_option("--rules", engine_rules,
                         "rules YAML (deploy/rules/default.yaml; `tend rules FILE` checks one)");
  engine_cmd->add_option("--sink", engine.sink,
                         "deliver reminder commands to this tend.v1.ReminderSink (host:port)");
  engine_cmd->add_option("--sink-in-flight", engine.sink_in_flight,
                         "deliveries to the sink in flight at once (one patient's stay in order)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  int64_t tick_s = absl::ToInt64Seconds(engine.tick_interval);
  engine_cmd->add_option("--tick-interval-s", tick_s,
                         "with --sink (LIVE mode): write a clock tick to every partition this "
                         "often so timers fire; 0: none (run `tend ticker`)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  int decisions_retention_days = 0;
  engine_cmd->add_option("--decisions-retention-days", decisions_retention_days,
                         "remove rule decisions (Explain's records) older than this many days as "
                         "the state is compacted; 0: keep them all")
      ->capture_default_str()
      ->check(CLI::Range(0, 36500));
  int64_t status_s = absl::ToInt64Seconds(engine.status_interval);
  engine_cmd->add_option("--status-interval-s", status_s,
                         "log a status line (records, rates, decisions, deliveries) this often; "
                         "0: none")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  engine_cmd->add_option("--config", engine_config,
                         "engine config YAML (proto/tend/v1/config.proto; `tend config` prints one)");

  // tend ticker
  TickerOptions ticker;
  int64_t ticker_s = absl::ToInt64Seconds(ticker.interval);
  auto* ticker_cmd = app.add_subcommand(
      "ticker", "Write a clock tick to every partition of the events topic at an interval, so "
                "absence and schedule timers fire when no patient writes.");
  ticker_cmd->add_option("--brokers", ticker.brokers, "bootstrap servers")->required();
  ticker_cmd->add_option("--topic", ticker.topic)->capture_default_str();
  ticker_cmd->add_option("--interval-s", ticker_s, "seconds between ticks")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  ticker_cmd->add_option("--name", ticker.name, "recorded in each tick (default tend-ticker@HOST)");

  // tend simulate
  std::string brokers;
  std::string topic = topic_default;
  CohortOptions cohort;
  std::string end_text;
  auto* sim_cmd = app.add_subcommand("simulate", "Produce a deterministic synthetic cohort.");
  sim_cmd->add_option("--brokers", brokers)->required();
  sim_cmd->add_option("--topic", topic)->capture_default_str();
  sim_cmd->add_option("--patients", cohort.patients)->capture_default_str();
  sim_cmd->add_option("--days", cohort.days)->capture_default_str();
  sim_cmd->add_option("--seed", cohort.seed)->capture_default_str();
  sim_cmd->add_option("--end", end_text, "end of the simulated period (default 2026-01-01T00:00:00Z)");

  // tend produce
  std::string input;
  auto* produce_cmd = app.add_subcommand(
      "produce", "Produce events from a JSONL file (one proto3-JSON tend.v1.Event per line).");
  produce_cmd->add_option("--brokers", brokers)->required();
  produce_cmd->add_option("--topic", topic)->capture_default_str();
  produce_cmd->add_option("--input", input, "JSONL file, or - for stdin")->required();

  // tend dump
  DumpOptions dump;
  std::string out_path, as_of_text;
  auto* dump_cmd = app.add_subcommand(
      "dump", "Every projection of every patient as JSON lines or CSV, from one consistent "
              "snapshot (works beside a running engine).");
  dump_cmd->add_option("--db", dump.db_dir);
  std::string dump_format = "jsonl";
  bool dump_dictionary = false;
  dump_cmd->add_option("--format", dump_format, "jsonl or csv")
      ->capture_default_str()
      ->check(CLI::IsMember({"jsonl", "csv"}));
  dump_cmd->add_option("--where", dump.where,
                       "only matching patients: COLUMN OP VALUE[,...], e.g. stage=silent,program=P "
                       "or risk>=0.5");
  dump_cmd->add_flag("--dictionary", dump_dictionary,
                     "print the CSV data dictionary (Markdown) and exit");
  dump_cmd->add_option("--out", out_path, "output file (default stdout)");
  dump_cmd->add_option("--config", dump.config_path,
                       "engine config YAML (default: the one the engine recorded in --db)");
  dump_cmd->add_option("--as-of", as_of_text,
                       "RFC 3339 instant to view at (default: each partition's clock)");
  dump_cmd->add_flag("--state", dump.raw_state,
                     "print the stored sufficient statistics (PatientState) instead");

  // tend fit-churn
  FitChurnOptions fit;
  auto* fit_cmd = app.add_subcommand(
      "fit-churn", "Fit BG/NBD churn parameters to the population (maximum likelihood); prints a "
                   "config snippet.");
  fit_cmd->add_option("--db", fit.db_dir)->required();
  fit_cmd->add_option("--config", fit.config_path,
                      "engine config YAML (default: the one the engine recorded in --db)");
  fit_cmd->add_option("--as-of", as_of_text,
                      "RFC 3339 end of the calibration period (default: each partition's clock)");

  // tend config
  std::string config_file;
  auto* config_cmd = app.add_subcommand(
      "config", "Check an engine config file and print the effective config with every key "
                "(without FILE: the defaults).");
  config_cmd->add_option("FILE", config_file, "engine config YAML");

  // tend demo
  DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Broker, simulated cohort, engine and gRPC in one "
                                              "process; prints a summary.");
  demo_cmd->add_option("--patients", demo.patients)->capture_default_str();
  demo_cmd->add_option("--days", demo.days)->capture_default_str();
  demo_cmd->add_option("--grpc-listen", demo.grpc_listen)->capture_default_str();
  demo_cmd->add_flag("--serve", demo.serve, "keep running (Ctrl-C stops) for grpcurl");
  demo_cmd->add_option("--rules", demo.rules_path,
                       "rules deciding reminders, delivered to the reference sink (\"\": none)")
      ->capture_default_str();

  // tend bench
  BenchOptions bench;
  auto* bench_cmd = app.add_subcommand("bench", "Engine throughput against raw consumption.");
  bench_cmd->add_option("--events", bench.events)->capture_default_str();
  bench_cmd->add_option("--patients", bench.patients)->capture_default_str();
  bench_cmd->add_option("--partitions", bench.partitions)->capture_default_str();
  std::string bench_rules;
  bench_cmd->add_option("--rules", bench_rules, "also decide with these rules (no dispatch)");
  bool bench_latency = false;
  LatencyBenchOptions latency;
  int64_t latency_seconds = absl::ToInt64Seconds(latency.duration);
  bench_cmd->add_flag("--latency", bench_latency,
                      "instead: event-to-command-at-sink latency at a steady rate (needs --rules)");
  bench_cmd->add_option("--rate", latency.rate, "--latency: events per second")
      ->capture_default_str();
  int64_t latency_commit_ms = absl::ToInt64Milliseconds(latency.commit_interval);
  bench_cmd->add_option("--commit-interval-ms", latency_commit_ms,
                        "--latency: the engine's commit interval")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  std::vector<std::string> latency_kafka;
  bench_cmd->add_option("--kafka", latency_kafka,
                        "--latency: extra librdkafka property for the engine (repeatable)");
  bench_cmd->add_option("--seconds", latency_seconds, "--latency: how long to produce")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  bench_cmd->add_option("--repeat", bench.repeat, "runs of each phase (medians are compared)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  bool bench_query = false;
  QueryBenchOptions query_bench;
  bench_cmd->add_flag("--query", bench_query,
                      "instead: Query/GetPatient throughput and latency under concurrent clients "
                      "(uses --patients, --events, --seconds, --clients)");
  bench_cmd->add_option("--clients", query_bench.clients, "--query: concurrent gRPC clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  bench_cmd->add_option("--days", query_bench.days,
                        "--query: fold a whole cohort of this many days (acquisition spread "
                        "over them) instead of the first --events of one acquired at once")
      ->check(CLI::Range(0, 3650));

  bool bench_dispatch = false;
  DispatchBenchOptions dispatch_bench;
  int64_t sink_delay_us = absl::ToInt64Microseconds(dispatch_bench.sink_delay);
  bench_cmd->add_flag("--dispatch", bench_dispatch,
                      "instead: outbox-to-sink delivery rate, one in flight against --in-flight, "
                      "and an idle dispatcher's cost with --deferred commands waiting");
  bench_cmd->add_option("--commands", dispatch_bench.commands, "--dispatch: commands per phase")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  bench_cmd->add_option("--in-flight", dispatch_bench.in_flight,
                        "--dispatch: deliveries in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  bench_cmd->add_option("--deferred", dispatch_bench.deferred,
                        "--dispatch: commands deferred to tomorrow while the dispatcher idles")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  bench_cmd->add_option("--sink-delay-us", sink_delay_us,
                        "--dispatch: the sink answers after this long (a remote gateway)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));

  // tend sink
  SinkOptions sink;
  auto* sink_cmd = app.add_subcommand(
      "sink", "Reference tend.v1.ReminderSink: accepts each command once (dedupe on command_id), "
              "records them as JSON lines.");
  sink_cmd->add_option("--listen", sink.listen, "address to serve on")->capture_default_str();
  sink_cmd->add_option("--out", sink.out_path,
                       "append accepted commands here (read back on start to dedupe across "
                       "restarts)");

  // tend explain
  std::string explain_db, explain_patient;
  int explain_limit = 20;
  auto* explain_cmd = app.add_subcommand(
      "explain", "Why a patient got (or did not get) each reminder: recent rule decisions with "
                 "the values behind them.");
  explain_cmd->add_option("--db", explain_db)->required();
  explain_cmd->add_option("PATIENT", explain_patient)->required();
  explain_cmd->add_option("--limit", explain_limit, "decisions, newest first")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));

  // tend rules
  std::string rules_file;
  auto* rules_cmd = app.add_subcommand(
      "rules", "Check a rules file against the schemas and list its rules (one line each).");
  rules_cmd->add_option("FILE", rules_file, "rules YAML (e.g. deploy/rules/default.yaml)")
      ->required();

  // tend replay
  ReplayOptions replay;
  std::vector<std::string> replay_kafka;
  std::string replay_config, replay_rules;
  auto* replay_cmd = app.add_subcommand(
      "replay", "Rebuild every projection from the log into a NEW state directory (REPLAY mode: "
                "nothing is sent).");
  replay_cmd->add_option("--brokers", replay.engine.brokers, "bootstrap servers (or --archive)");
  replay_cmd->add_option("--archive", replay.archive_path,
                         "replay this archive (tend archive) instead of the topic");
  replay_cmd->add_option("--to", replay.to_dir,
                         "the new state directory (must not exist, or be empty)");
  std::string replay_baseline, replay_diff, replay_swap_db;
  bool replay_swap = false;
  replay_cmd->add_flag("--swap", replay_swap,
                       "make the finished rebuild --to DIR the state of --db LIVE (the engine on "
                       "LIVE must be stopped)");
  replay_cmd->add_option("--db", replay_swap_db, "--swap: the live state directory");
  replay_cmd->add_option("--baseline", replay_baseline,
                         "backtest: the current rules YAML, compared with --rules (needs --diff)");
  replay_cmd->add_option("--diff", replay_diff,
                         "backtest: write the commands added, removed or moved per patient here "
                         "(JSONL); totals per rule go to stdout");
  replay_cmd->add_option("--topic", replay.engine.topic)->capture_default_str();
  replay_cmd->add_option("--rules", replay_rules, "rules YAML: decide as the live engine would");
  replay_cmd->add_option("--config", replay_config, "engine config YAML (projection parameters)");
  std::string replay_from;
  replay_cmd->add_option("--from", replay_from,
                         "RFC 3339 time: start each partition at its first record at or after it "
                         "(default: the beginning of the log)");
  replay_cmd->add_option("--commands-out", replay.commands_out,
                         "write the commands the replay decided here (JSONL; none is sent)");
  replay_cmd->add_option("--kafka", replay_kafka, "extra librdkafka property KEY=VALUE (repeatable)");

  // tend report
  ReportOptions report_options;
  std::string report_out, report_as_of;
  auto* report_cmd = app.add_subcommand(
      "report", "A self-contained HTML cohort report (inline SVG charts, no network).");
  report_cmd->add_option("--db", report_options.db_dir, "state directory")->required();
  report_cmd->add_option("--out", report_out, "the HTML file")->required();
  report_cmd->add_option("--as-of", report_as_of,
                         "RFC 3339 instant to view at (default: each partition's clock)");
  report_cmd->add_option("--config", report_options.config_path,
                         "engine config YAML (default: the one the engine recorded in --db)");
  report_cmd->add_option("--title", report_options.title)->capture_default_str();

  // tend archive
  ArchiveOptions archive;
  std::vector<std::string> archive_kafka;
  auto* archive_cmd = app.add_subcommand(
      "archive", "Export the events topic to a versioned, checksummed archive file.");
  archive_cmd->add_option("--brokers", archive.brokers, "bootstrap servers")->required();
  archive_cmd->add_option("--out", archive.out, "the archive file")->required();
  archive_cmd->add_option("--topic", archive.topic)->capture_default_str();
  archive_cmd->add_option("--kafka", archive_kafka,
                          "extra librdkafka property KEY=VALUE (repeatable)");

  CLI11_PARSE(app, argc, argv);
  std::atomic<bool>& stop = InstallStopSignals();

  if (*broker_cmd) return Exit(RunBroker(broker, stop, std::cout), "broker");
  if (*engine_cmd) {
    auto config = LoadEngineConfig(engine_config);
    if (!config.ok()) return Exit(config.status(), "engine");
    engine.engine.projections = *std::move(config);
    if (!engine_rules.empty()) {
      auto rules = RuleSet::Load(engine_rules);
      if (!rules.ok()) return Exit(rules.status(), "engine");
      engine.engine.rules = std::make_shared<const RuleSet>(*std::move(rules));
    }
    engine.engine.commit_interval = absl::Milliseconds(commit_ms);
    engine.tick_interval = absl::Seconds(tick_s);
    engine.status_interval = absl::Seconds(status_s);
    engine.storage.decisions_retention = absl::Hours(24) * decisions_retention_days;
    engine.engine.commit.sync = sync;
    for (const auto& kv : kafka_props) {
      if (absl::Status s = ParseKafkaProp(kv, &engine.engine.kafka); !s.ok()) {
        return Exit(s, "engine");
      }
    }
    return Exit(RunEngine(engine, stop), "engine");
  }
  if (*report_cmd) {
    if (!report_as_of.empty()) {
      absl::Time t;
      if (absl::Status s = ParseTimeFlag("--as-of", report_as_of, &t); !s.ok()) {
        return Exit(s, "report");
      }
      report_options.as_of = t;
    }
    auto stats = ComputeCohortStats(report_options);
    if (!stats.ok()) return Exit(stats.status(), "report");
    if (absl::Status s = WriteFileAtomically(report_out, [&](std::ostream& out) {
          out << RenderReport(*stats, report_options);
          return absl::OkStatus();
        });
        !s.ok()) {
      return Exit(s, "report");
    }
    std::cerr << "report of " << stats->patients() << " patients written to " << report_out
              << std::endl;
    return 0;
  }
  if (*archive_cmd) {
    for (const auto& kv : archive_kafka) {
      if (absl::Status s = ParseKafkaProp(kv, &archive.kafka); !s.ok()) return Exit(s, "archive");
    }
    archive.progress_bar = isatty(fileno(stderr)) != 0;
    auto report = ExportArchive(archive, stop, std::cerr);
    if (!report.ok()) return Exit(report.status(), "archive");
    std::cerr << absl::StrFormat("archived %d records of %s (%d partitions) to %s: %d bytes in "
                                 "%.1f s\n",
                                 report->records, archive.topic, report->partitions, archive.out,
                                 report->bytes, absl::ToDoubleSeconds(report->elapsed));
    return 0;
  }
  if (*replay_cmd && replay_swap) {
    if (replay_swap_db.empty() || replay.to_dir.empty()) {
      return Exit(absl::InvalidArgumentError("--swap needs --db LIVE_DIR and --to REBUILT_DIR"),
                  "replay");
    }
    auto swapped = SwapState(replay_swap_db, replay.to_dir);
    if (!swapped.ok()) return Exit(swapped.status(), "replay");
    std::cerr << "swapped: " << replay_swap_db << " now holds the rebuilt state; "
              << swapped->commands_carried << " undelivered commands carried over from the old "
              << "outbox; the previous state is in " << swapped->previous_dir
              << ". Start the engine on " << replay_swap_db << " again. To undo (engine stopped): "
              << "mv " << replay_swap_db << " " << replay.to_dir << " && mv "
              << swapped->previous_dir << " " << replay_swap_db << std::endl;
    return 0;
  }
  if (*replay_cmd) {
    if (replay.engine.brokers.empty() == replay.archive_path.empty()) {
      return Exit(absl::InvalidArgumentError(
                      "give --brokers (replay the topic) or --archive FILE (replay an archive)"),
                  "replay");
    }
    auto config = LoadEngineConfig(replay_config);
    if (!config.ok()) return Exit(config.status(), "replay");
    replay.engine.projections = *std::move(config);
    if (!replay_rules.empty()) {
      auto rules = RuleSet::Load(replay_rules);
      if (!rules.ok()) return Exit(rules.status(), "replay");
      replay.engine.rules = std::make_shared<const RuleSet>(*std::move(rules));
    }
    for (const auto& kv : replay_kafka) {
      if (absl::Status s = ParseKafkaProp(kv, &replay.engine.kafka); !s.ok()) {
        return Exit(s, "replay");
      }
    }
    replay.progress_bar = isatty(fileno(stderr)) != 0;
    if (!replay_from.empty()) {
      absl::Time t;
      if (absl::Status s = ParseTimeFlag("--from", replay_from, &t); !s.ok()) {
        return Exit(s, "replay");
      }
      replay.engine.start_at = t;
    }
    if (!replay_baseline.empty() || !replay_diff.empty()) {
      if (replay_baseline.empty() || replay_diff.empty() || !replay.engine.rules) {
        return Exit(absl::InvalidArgumentError("a backtest needs --rules NEW.yaml, --baseline "
                                               "CURRENT.yaml and --diff OUT"),
                    "replay");
      }
      if (!replay.to_dir.empty() || !replay.commands_out.empty()) {
        return Exit(absl::InvalidArgumentError("a backtest keeps no state: --to and "
                                               "--commands-out are for a plain replay"),
                    "replay");
      }
      auto baseline = RuleSet::Load(replay_baseline);
      if (!baseline.ok()) return Exit(baseline.status(), "replay");
      BacktestOptions backtest;
      backtest.replay = replay;
      backtest.baseline = std::make_shared<const RuleSet>(*std::move(baseline));
      backtest.candidate = replay.engine.rules;
      backtest.diff_out = replay_diff;
      auto diff = Backtest(backtest, stop, std::cerr);
      if (!diff.ok()) return Exit(diff.status(), "replay");
      WriteTotals(*diff, std::cout);
      std::cerr << "changes per patient in " << replay_diff << std::endl;
      return 0;
    }
    if (replay.to_dir.empty()) {
      return Exit(absl::InvalidArgumentError("--to DIR is required (or --baseline and --diff "
                                             "for a backtest)"),
                  "replay");
    }
    auto report = Replay(replay, stop, std::cerr);
    if (!report.ok()) return Exit(report.status(), "replay");
    std::cerr << absl::StrFormat(
        "replayed %d records into %s in %.1f s (%.0f records/s): %d events applied, %d "
        "duplicates, %d bad records skipped, %d decisions, %d commands (not sent)%s\n",
        report->stats.records, replay.to_dir, absl::ToDoubleSeconds(report->elapsed),
        report->records_per_second, report->stats.events_applied, report->stats.duplicates,
        report->stats.dead_lettered, report->stats.decisions, report->stats.commands,
        replay.commands_out.empty() ? "" : absl::StrCat("; commands in ", replay.commands_out));
    return 0;
  }
  if (*ticker_cmd) {
    ticker.interval = absl::Seconds(ticker_s);
    return Exit(RunTicker(ticker, stop), "ticker");
  }
  if (*sim_cmd) {
    if (!end_text.empty()) {
      if (absl::Status s = ParseTimeFlag("--end", end_text, &cohort.end); !s.ok()) {
        return Exit(s, "simulate");
      }
    }
    auto producer = Producer::Create({{"bootstrap.servers", brokers}});
    if (!producer.ok()) return Exit(producer.status(), "simulate");
    auto n = SimulateToKafka(cohort, producer->get(), topic);
    if (!n.ok()) return Exit(n.status(), "simulate");
    std::cerr << "produced " << *n << " records to " << topic << std::endl;
    return 0;
  }
  if (*produce_cmd) {
    std::ifstream file;
    if (input != "-") {
      file.open(input);
      if (!file) return Exit(absl::NotFoundError("cannot read --input " + input), "produce");
    }
    auto producer = Producer::Create({{"bootstrap.servers", brokers}});
    if (!producer.ok()) return Exit(producer.status(), "produce");
    auto report = ProduceJsonl(input == "-" ? std::cin : file, producer->get(), topic, std::cerr);
    if (!report.ok()) return Exit(report.status(), "produce");
    std::cerr << "produced " << report->produced << " of " << report->lines << " events";
    if (report->bad > 0) std::cerr << "; " << report->bad << " bad lines (see above)";
    std::cerr << std::endl;
    return report->bad > 0 ? 1 : 0;
  }
  if (*dump_cmd) {
    if (dump_dictionary) {
      std::cout << DumpColumns().Dictionary();
      return 0;
    }
    if (dump.db_dir.empty()) return Exit(absl::InvalidArgumentError("--db is required"), "dump");
    dump.format = dump_format == "csv" ? DumpOptions::Format::kCsv : DumpOptions::Format::kJsonl;
    if (!as_of_text.empty()) {
      absl::Time t;
      if (absl::Status s = ParseTimeFlag("--as-of", as_of_text, &t); !s.ok()) return Exit(s, "dump");
      dump.as_of = t;
    }
    if (out_path.empty()) {
      auto report = DumpPatients(dump, std::cout);
      if (!report.ok()) return Exit(report.status(), "dump");
      std::cerr << "dumped " << report->patients << " patients; snapshot: "
                << DumpStamp(dump, *report) << std::endl;
      return 0;
    }
    // No half-written dump is left behind; the snapshot stamp goes beside it, in
    // OUT.snapshot.json.
    absl::StatusOr<DumpReport> report;
    if (absl::Status s = WriteFileAtomically(out_path, [&](std::ostream& out) {
          report = DumpPatients(dump, out);
          return report.status();
        });
        !s.ok()) {
      return Exit(s, "dump");
    }
    const std::string stamp_path = out_path + ".snapshot.json";
    if (absl::Status s = WriteFileAtomically(stamp_path, [&](std::ostream& out) {
          out << DumpStamp(dump, *report) << '\n';
          return absl::OkStatus();
        });
        !s.ok()) {
      return Exit(s, "dump");
    }
    std::cerr << "dumped " << report->patients << " of " << report->scanned << " patients to "
              << out_path << " (snapshot stamp in " << stamp_path << ")" << std::endl;
    return 0;
  }
  if (*fit_cmd) {
    if (!as_of_text.empty()) {
      absl::Time t;
      if (absl::Status s = ParseTimeFlag("--as-of", as_of_text, &t); !s.ok()) {
        return Exit(s, "fit-churn");
      }
      fit.as_of = t;
    }
    auto report = FitChurn(fit, std::cout, std::cerr);
    if (!report.ok()) return Exit(report.status(), "fit-churn");
    return report->fit.converged ? 0 : 1;
  }
  if (*explain_cmd) {
    return Exit(ExplainPatient(explain_db, explain_patient, explain_limit, std::cout), "explain");
  }
  if (*sink_cmd) return Exit(RunSink(sink, stop, std::cout), "sink");
  if (*rules_cmd) {
    auto rules = RuleSet::Load(rules_file);
    if (!rules.ok()) return Exit(rules.status(), "rules");
    std::cout << DescribeRules(*rules);
    return 0;
  }
  if (*config_cmd) {
    auto config = LoadEngineConfig(config_file);
    if (!config.ok()) return Exit(config.status(), "config");
    std::cout << FormatEngineConfig(*config);
    return 0;
  }
  if (*demo_cmd) return Exit(RunDemo(demo, stop, std::cout), "demo");
  if (*bench_cmd) {
    if (!bench_rules.empty()) {
      auto rules = RuleSet::Load(bench_rules);
      if (!rules.ok()) return Exit(rules.status(), "bench");
      bench.rules = std::make_shared<const RuleSet>(*std::move(rules));
    }
    if (bench_query) {
      query_bench.patients = bench.patients;
      query_bench.events = std::min<int64_t>(bench.events, 500'000);
      query_bench.duration = absl::Seconds(latency_seconds);
      return Exit(RunQueryBench(query_bench, std::cout), "bench");
    }
    if (bench_dispatch) {
      dispatch_bench.repeat = bench.repeat;
      dispatch_bench.sink_delay = absl::Microseconds(sink_delay_us);
      return Exit(RunDispatchBench(dispatch_bench, std::cout), "bench");
    }
    if (bench_latency) {
      latency.rules = bench.rules;
      latency.duration = absl::Seconds(latency_seconds);
      latency.commit_interval = absl::Milliseconds(latency_commit_ms);
      for (const auto& kv : latency_kafka) {
        if (absl::Status s = ParseKafkaProp(kv, &latency.kafka); !s.ok()) return Exit(s, "bench");
      }
      return Exit(RunLatencyBench(latency, std::cout), "bench");
    }
    return Exit(RunBench(bench, std::cout), "bench");
  }
  return 0;
}
