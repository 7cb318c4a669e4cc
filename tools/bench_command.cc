// tend bench: the benchmarks of bench/ (throughput by default; --latency, --query, --dispatch,
// --ingest).
#include <unistd.h>

#include <iostream>

#include "bench/bench.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddBenchCommand(CLI::App* app) {
  struct Flags {
    BenchOptions bench;
    std::string rules;
    bool latency = false;
    LatencyBenchOptions latency_bench;
    int64_t seconds = absl::ToInt64Seconds(LatencyBenchOptions().duration);
    int64_t latency_commit_ms = absl::ToInt64Milliseconds(LatencyBenchOptions().commit_interval);
    std::vector<std::string> latency_kafka;
    bool query = false;
    QueryBenchOptions query_bench;
    bool dispatch = false;
    bool ingest = false;
    IngestBenchOptions ingest_bench;
    bool history = false;
    bool burst = false;
    bool processes = false;
    std::vector<int> process_counts = ProcessesBenchOptions().processes;
    HistoryBenchOptions history_bench;
    DispatchBenchOptions dispatch_bench;
    int64_t sink_delay_us = absl::ToInt64Microseconds(DispatchBenchOptions().sink_delay);
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand("bench", "Engine throughput against raw consumption.");
  cmd->add_option("--events", f->bench.events)->capture_default_str();
  cmd->add_option("--patients", f->bench.patients)->capture_default_str();
  cmd->add_option("--partitions", f->bench.partitions)->capture_default_str();
  cmd->add_flag("--long-ids", f->bench.long_ids,
                "the throughput bench: patient ids of 36 characters shaped like UUIDs (as many "
                "deployments' are) instead of 8 (\"p0000123\")");
  cmd->add_option("--rules", f->rules, "also decide with these rules (no dispatch)");
  cmd->add_flag("--processes", f->processes,
                "the log folded by 1, 2 and 4 `tend engine` processes in one group (with the "
                "state changelog) against one broker: wall time and events/s per count");
  cmd->add_option("--process-counts", f->process_counts, "--processes: the counts")
      ->capture_default_str();
  cmd->add_flag("--changelog", f->bench.changelog,
                "also fold with the state changelog on (changelog_eps, changelog_ratio), then "
                "restore every partition from it into an empty directory (takeover_restore_s "
                "against rebuild_s)");
  cmd->add_flag("--latency", f->latency,
                "instead: event-to-command-at-sink latency at a steady rate (needs --rules)");
  cmd->add_option("--rate", f->latency_bench.rate, "--latency: events per second")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e7));
  cmd->add_option("--commit-interval-ms", f->latency_commit_ms,
                  "--latency: the engine's commit interval")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  cmd->add_option("--kafka", f->latency_kafka,
                  "--latency and the throughput bench: extra librdkafka property for the "
                  "engine (repeatable)");
  cmd->add_option("--seconds", f->seconds,
                  "--latency: how long to produce (with a new patient every 20 events, "
                  "--patients at least enough for the whole run unless given)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--repeat", f->bench.repeat, "runs of each phase (medians are compared)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  cmd->add_flag("--query", f->query,
                "instead: Query/GetPatient throughput and latency under concurrent clients "
                "(uses --patients, --events, --seconds, --clients)");
  cmd->add_option("--clients", f->query_bench.clients, "--query: concurrent gRPC clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--days", f->query_bench.days,
                  "--query: fold a whole cohort of this many days (acquisition spread "
                  "over them) instead of the first --events of one acquired at once")
      ->check(CLI::Range(0, 3650));
  cmd->add_flag("--history", f->history,
                "instead: CPU per record-or-timer of the same record count with 30-, 365- and "
                "1,095-day histories (--events: 300000 unless given; --repeat folds each)");
  cmd->add_flag("--burst", f->burst,
                "instead: the morning burst - every patient's 09:00 schedule timer due at once "
                "(--patients: 1000000 unless given, --partitions)");
  cmd->add_option("--history-days", f->history_bench.days,
                  "--history: the history lengths in days, the first the baseline (30,365,1095 "
                  "or repeated)")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::Range(1, 3650));
  cmd->add_option("--history-commit-records", f->history_bench.commit_max_records,
                  "--history: records and timers per commit (0: the engine's default); a live "
                  "engine that keeps up commits every few ms, a few records each")
      ->check(CLI::Range(int64_t{0}, int64_t{10'000'000}));
  cmd->add_flag("--ingest", f->ingest,
                "Ingest/Append (one event per call) against AppendBatch (--batch per call) at "
                "the same --clients");
  cmd->add_option("--batch", f->ingest_bench.batch, "--ingest: events per AppendBatch call")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--dispatch", f->dispatch,
                "instead: outbox-to-sink delivery rate, one in flight against --in-flight, "
                "and an idle dispatcher's cost with --deferred commands waiting");
  cmd->add_option("--commands", f->dispatch_bench.commands, "--dispatch: commands per phase")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  cmd->add_option("--in-flight", f->dispatch_bench.in_flight,
                  "--dispatch: deliveries in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--deferred", f->dispatch_bench.deferred,
                  "--dispatch: commands deferred to tomorrow while the dispatcher idles")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  cmd->add_option("--sink-delay-us", f->sink_delay_us,
                  "--dispatch: the sink answers after this long (a remote gateway)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  return [f, cmd](const std::atomic<bool>&) {
    auto rules = LoadRulesFlag(f->rules);
    if (!rules.ok()) return Exit(rules.status(), "bench");
    f->bench.rules = *std::move(rules);
    if (f->query) {
      QueryBenchOptions& q = f->query_bench;
      q.patients = f->bench.patients;
      q.events = std::min<int64_t>(f->bench.events, 500'000);
      q.duration = absl::Seconds(f->seconds);
      return Exit(RunQueryBench(q, std::cout), "bench");
    }
    if (f->processes) {
      ProcessesBenchOptions p;
      p.events = f->bench.events;
      p.patients = f->bench.patients;
      p.partitions = f->bench.partitions;
      p.repeat = cmd->count("--repeat") > 0 ? f->bench.repeat : 1;
      p.processes = f->process_counts;
      p.rules_path = f->rules;
      char self[4096];
      const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
      if (n <= 0) return Exit(absl::InternalError("cannot find this binary"), "bench");
      p.tend_binary = std::string(self, static_cast<size_t>(n));
      return Exit(RunProcessesBench(p, std::cout), "bench");
    }
    if (f->burst) {
      BurstBenchOptions b;
      if (cmd->count("--patients") > 0) b.patients = f->bench.patients;
      b.partitions = f->bench.partitions;
      return Exit(RunBurstBench(b, std::cout), "bench");
    }
    if (f->history) {
      HistoryBenchOptions& h = f->history_bench;
      if (cmd->count("--events") > 0) h.events = f->bench.events;
      if (cmd->count("--repeat") > 0) h.repeat = f->bench.repeat;
      h.rules = f->bench.rules;
      return Exit(RunHistoryBench(h, std::cout), "bench");
    }
    if (f->ingest) {
      IngestBenchOptions& i = f->ingest_bench;
      if (cmd->count("--clients") > 0) i.clients = f->query_bench.clients;
      if (cmd->count("--seconds") > 0) i.duration = absl::Seconds(f->seconds);
      if (cmd->count("--repeat") > 0) i.repeat = f->bench.repeat;
      return Exit(RunIngestBench(i, std::cout), "bench");
    }
    if (f->dispatch) {
      DispatchBenchOptions& d = f->dispatch_bench;
      d.repeat = f->bench.repeat;
      d.sink_delay = absl::Microseconds(f->sink_delay_us);
      return Exit(RunDispatchBench(d, std::cout), "bench");
    }
    if (f->latency) {
      LatencyBenchOptions& l = f->latency_bench;
      l.rules = f->bench.rules;
      l.duration = absl::Seconds(f->seconds);
      if (cmd->count("--patients") > 0) l.patients = f->bench.patients;
      l.commit_interval = absl::Milliseconds(f->latency_commit_ms);
      if (absl::Status s = ParseKafkaFlags(f->latency_kafka, &l.kafka); !s.ok()) {
        return Exit(s, "bench");
      }
      return Exit(RunLatencyBench(l, std::cout), "bench");
    }
    if (absl::Status s = ParseKafkaFlags(f->latency_kafka, &f->bench.kafka); !s.ok()) {
      return Exit(s, "bench");
    }
    return Exit(RunBench(f->bench, std::cout), "bench");
  };
}

}  // namespace tend
