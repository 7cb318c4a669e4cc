// `tend bench`: each benchmark measures against a baseline taken in the same run and prints JSON
// lines - the engine against raw consumption (throughput_bench.cc), event-to-command latency
// (latency_bench.cc), GetPatient and ListPatients (query_bench.cc), outbox delivery
// (dispatch_bench.cc), Append against AppendBatch (ingest_bench.cc). docs/benchmarks.md logs what they measured.
#ifndef TEND_BENCH_BENCH_H_
#define TEND_BENCH_BENCH_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dev/mock_broker.h"
#include "kafka/props.h"
#include "rules/rules.h"

namespace tend {

class Producer;

struct BenchOptions {
  int64_t events = 1'000'000;
  int patients = 100'000;
  int partitions = 32;
  uint64_t seed = 42;
  int repeat = 5;  // runs of each phase; the medians are compared (this machine is noisy)
  std::shared_ptr<const RuleSet> rules;  // null: projections only
  // Extra librdkafka properties of the engine (e.g. statistics.interval.ms, as --metrics-listen
  // sets it), not of the raw consumer it is compared with.
  KafkaProps kafka;
  // Also fold with the state changelog on in each round (changelog_eps, changelog_ratio against
  // the engine without it), then restore every partition from that changelog into an empty
  // directory (takeover_restore_s, against rebuild_s: folding the log again).
  bool changelog = false;
  // The cohort's patient ids 36 characters long (CohortOptions::long_ids), not 8.
  bool long_ids = false;
};
// tend bench: raw librdkafka consumption vs the engine end to end, one JSON line on `out`.
absl::Status RunBench(const BenchOptions& options, std::ostream& out);
// A mock broker (dev/mock_broker.h) with `partitions` partitions whose topic holds the
// benchmarks' simulated cohort (all patients acquired on day 0, ten years of behaviour) cut at
// `events` records, every one acknowledged.
struct BenchLog {
  std::unique_ptr<MockBroker> broker;
  std::string topic;
  int64_t records = 0;  // produced
};
absl::StatusOr<BenchLog> StartBenchLog(int partitions, int patients, int64_t events,
                                       uint64_t seed, bool long_ids = false);

struct ProcessesBenchOptions {
  int64_t events = 1'000'000;
  int patients = 100'000;
  int partitions = 32;
  uint64_t seed = 42;
  std::vector<int> processes = {1, 2, 4};
  int repeat = 1;           // rounds; each runs every count, in alternating order
  std::string rules_path;   // passed to each engine's --rules; empty: none
  std::string tend_binary;  // the `tend` to start (this one)
};
// tend bench --processes: the same log folded by 1, 2 and 4 `tend engine` processes in one
// consumer group (with the state changelog) against one broker (this process); per count, the
// wall time from their start until the last exits idle, and events/s. One JSON line per run.
absl::Status RunProcessesBench(const ProcessesBenchOptions& options, std::ostream& out);

struct HistoryBenchOptions {
  int64_t events = 300'000;            // records per cohort, about (whole patients are simulated)
  std::vector<int> days = {30, 365, 1095};  // history lengths; the first is the baseline
  int partitions = 8;
  uint64_t seed = 42;
  int repeat = 3;                      // rounds, each folding every cohort once; medians reported
  std::shared_ptr<const RuleSet> rules;  // null: projections only
  // Records (and timers) per commit; 0: the engine's default (500,000, or 2 s). A live engine
  // that keeps up commits every few milliseconds, so each commit rewrites the patients of a few
  // records: small commits measure what a dirty patient's rewrite costs at each history length.
  int64_t commit_max_records = 0;
};
// tend bench --history: CPU per record-or-timer of the same record count with histories of each
// length in `days`, folded from memory in REPLAY mode; one JSON line per length on `out`.
absl::Status RunHistoryBench(const HistoryBenchOptions& options, std::ostream& out);

struct BurstBenchOptions {
  int patients = 1'000'000;
  int partitions = 32;
};
// tend bench --burst: every patient's daily 09:00 timer falls due at once; the time until every
// decision is committed, and decisions per second. One JSON line on `out`.
absl::Status RunBurstBench(const BurstBenchOptions& options, std::ostream& out);

struct LatencyBenchOptions {
  double rate = 20000;                       // events per second, paced
  absl::Duration duration = absl::Seconds(20);
  // One new patient's first scan every `new_every` events, whose welcome command is what the
  // latency is measured on; 0: enough patients for the whole run, at least 50,000 (with fewer,
  // new patients run out and the rest of the run is not measured).
  int patients = 0;
  int new_every = 20;                        // events; the others are check-ins
  int partitions = 8;
  // Commands reach the dispatcher when committed; the engine commits within
  // commit_delay_when_caught_up while it keeps up with the log.
  absl::Duration commit_interval = absl::Seconds(2);  // the engine's default
  KafkaProps kafka;                          // extra consumer properties for the engine
  std::shared_ptr<const RuleSet> rules;      // required
};
// tend bench --latency: a steady stream of events (recorded now) through Kafka, the engine with
// rules, the dispatcher and the reference sink over gRPC; event-to-command-at-sink latency
// percentiles, one JSON line on `out`.
absl::Status RunLatencyBench(const LatencyBenchOptions& options, std::ostream& out);

struct QueryBenchOptions {
  int patients = 100'000;
  int64_t events = 500'000;
  // 0: every patient acquired on day 0 of a long cohort, cut at `events` (GetPatient on many
  // patients). N: a cohort of N days (acquisition spread over them, 30% on day 0), all its
  // events: patients at every stage and risk, for ListPatients.
  int days = 0;
  int clients = 8;  // concurrent gRPC clients, each on its own channel
  absl::Duration duration = absl::Seconds(10);
  uint64_t seed = 42;
};
// tend bench --query: Query/GetPatient over real gRPC (loopback) against a state folded from a
// simulated cohort, `clients` callers at once for `duration`; against the same lookups made
// in process by one thread (the baseline of the ratio). Then Query/ListPatients paged to the end
// for a few filters, against walking every patient. JSON lines on `out`.
absl::Status RunQueryBench(const QueryBenchOptions& options, std::ostream& out);

struct DispatchBenchOptions {
  int64_t commands = 2'000;   // per phase
  int64_t deferred = 100'000;
  int in_flight = 16;
  absl::Duration sink_delay = absl::Milliseconds(2);  // a remote gateway's response time
  int repeat = 5;
};
// tend bench --dispatch: outbox-to-sink throughput with one delivery in flight against
// `in_flight`, and what a backlog of deferred commands costs an idle dispatcher. One JSON line.
absl::Status RunDispatchBench(const DispatchBenchOptions& options, std::ostream& out);

struct IngestBenchOptions {
  int clients = 4;   // concurrent gRPC callers, each on its own connection
  int batch = 100;   // events per AppendBatch call
  int partitions = 16;
  absl::Duration duration = absl::Seconds(5);  // per round and method
  int repeat = 3;
};
// tend bench --ingest: events/s through Ingest/Append against Ingest/AppendBatch at the same
// client concurrency (an IngestService on loopback, the dev broker in this process). One JSON
// line.
absl::Status RunIngestBench(const IngestBenchOptions& options, std::ostream& out);

// The q-quantile (0..1) of `v`: the element at rank floor(q * n), the largest for q = 1; 0 for
// none.
inline double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace tend

#endif  // TEND_BENCH_BENCH_H_
