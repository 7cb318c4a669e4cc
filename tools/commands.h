// What the smaller `tend` subcommands do, as library functions: each tools/<name>_command.cc
// parses its flags and calls one of these (the tests call them directly). Each returns the
// status the process exits with; progress and summaries go to the given streams.
#ifndef TEND_TOOLS_COMMANDS_H_
#define TEND_TOOLS_COMMANDS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "kafka/ticker.h"
#include "kafka/kafka.h"
#include "rules/rules.h"
#include "projections/bgnbd.h"
#include "dispatch/dispatcher.h"
#include "services/full_scans.h"
#include "tools/remote.h"

namespace tend {

struct EngineCommandOptions {
  EngineOptions engine;
  std::string db_dir;
  std::string grpc_listen;  // empty: no gRPC server
  ServerSecurity grpc_security;  // its TLS, tokens and reflection (auth/auth.h)
  StorageOptions storage;   // decisions_retention from --decisions-retention-days
  std::string sink;         // ReminderSink host:port; empty: commands stay in the outbox
  int sink_in_flight = 16;  // deliveries to the sink in flight at once (DispatcherOptions)
  ClientSecurity sink_security;  // TLS to the sink and the deliver-role token
  // CohortStats reads (and parts of gathered ones) running at once; beyond: RESOURCE_EXHAUSTED
  // (services/full_scans.h).
  int max_cohort_scans = FullScans::kDefaultMax;
  // LIVE mode (a sink is set): write a ClockTick to every partition this often, so timers fire
  // when no patient writes. Zero: no ticks from this engine (run `tend ticker` instead).
  absl::Duration tick_interval = absl::Minutes(1);
  // Log a status line (FormatEngineStatus) this often; zero: none.
  absl::Duration status_interval = absl::Minutes(1);
  // Serve Prometheus metrics at http://ADDR/metrics (observe/metrics.h); empty: none.
  std::string metrics_listen;
  // The health service answers SERVING once every assigned partition is at most this many
  // records behind its log (observe/health.h).
  int64_t health_max_lag = 10'000;
  // Several instances (cluster/): this instance's gRPC address as the others reach it; set, it
  // joins the membership topic and Query's GetPatient and Explain are answered by the owner of
  // the patient's partition. Requires grpc_listen.
  std::string advertise;
  std::string membership_topic = "tend.membership";
  ClientSecurity peer_security;  // how to reach the other instances (tls_ca)
  // The cluster key file (auth/record_mac.h): member records are signed and checked with it.
  // Required with an `advertise` off loopback unless `unsigned_membership`.
  std::string cluster_key_file;
  bool unsigned_membership = false;
};
// One status line of a running engine: the counters, what changed over `elapsed` since
// `before`, the rules' counters (`rules`: the engine decides), and (LIVE mode) the dispatcher's.
std::string FormatEngineStatus(const EngineStats& now, const EngineStats& before,
                               absl::Duration elapsed, bool rules,
                               const DispatcherStats* dispatcher);
// tend engine: folds the topic into --db until `stop` (or idle with --exit-when-idle).
absl::Status RunEngine(const EngineCommandOptions& options, const std::atomic<bool>& stop);

// tend ticker: writes a ClockTick to every partition each interval until `stop`.
absl::Status RunTicker(const TickerOptions& options, const std::atomic<bool>& stop);

struct ProduceReport {
  int64_t lines = 0;     // non-blank lines read
  int64_t produced = 0;  // acknowledged by the broker
  int64_t bad = 0;       // rejected lines (reported on `errors`)
  int64_t restamped = 0;  // lines whose recorded_at was replaced by the time of ingest
};
// tend produce: one proto3-JSON Event per line. A bad line is reported on `errors` as
// "line N: <field>: <problem>" and not produced. recorded_at is the ingest time (now), whatever
// the line says, unless `historical` (an import of past events): then a line's recorded_at is
// kept (now when absent), and one later than now + `max_ahead` is a bad line. Each record's
// Kafka timestamp is its recorded_at.
struct ProduceJsonlOptions {
  bool historical = false;
  absl::Duration max_ahead = ValidationOptions().max_recorded_ahead;
};
absl::StatusOr<ProduceReport> ProduceJsonl(std::istream& in, Producer* producer,
                                           const std::string& topic, std::ostream& errors,
                                           const ProduceJsonlOptions& options = {});

struct DumpOptions {
  std::string db_dir;
  // remote.target set: the patients of a running deployment, through that instance's
  // Query/ListPatients (tools/remote.h), instead of db_dir's. Views only (no raw_state).
  RemoteOptions remote;
  // Empty: the config the engine recorded in the directory (else the defaults).
  std::string config_path;
  // Unset: each patient's partition clock (the latest recorded_at folded in that partition).
  std::optional<absl::Time> as_of;
  // The stored sufficient statistics (PatientState) instead of the view (JSONL only).
  bool raw_state = false;
  enum class Format { kJsonl, kCsv };
  // kJsonl: one proto3-JSON PatientView per line. kCsv: a header line, then one row per patient
  // with the flat columns of tools/dump_format.h (docs/data-dictionary.md).
  Format format = Format::kJsonl;
  // Only patients whose view matches ("stage=silent,program=P"; tools/dump_format.h).
  std::string where;
};
struct DumpReport {
  int64_t patients = 0;  // written
  int64_t scanned = 0;   // read (before --where)
  // The offsets the dump reflects: every record below next_offset of each partition, and
  // nothing after it (one consistent read of the directory).
  std::vector<v1::PartitionCheckpoint> checkpoints;
};
// tend dump: every patient's projections at their as-of, read from one consistent view of the
// directory (a RocksDB secondary instance, so it works beside a running engine), or through a
// running deployment (options.remote; each page read when asked for, report.checkpoints then
// holding the offset each partition was last read at). Progress of a remote read goes to
// `progress`.
absl::StatusOr<DumpReport> DumpPatients(const DumpOptions& options, std::ostream& out,
                                        std::ostream& progress);
// The snapshot stamp of a dump as one JSON object: the offsets per partition, the patients, the
// options that shaped it.
std::string DumpStamp(const DumpOptions& options, const DumpReport& report);

struct FitChurnOptions {
  std::string db_dir;
  std::string config_path;          // empty: the config recorded in the directory
  std::optional<absl::Time> as_of;  // unset: each patient's partition clock
};
struct BgNbdFitReport {
  int64_t patients = 0;
  int64_t customers = 0;  // patients with activity (the sample)
  projections::BgNbdFit fit;
  double start_log_likelihood = 0;  // at the configured parameters
};
// tend fit-churn: fits the BG/NBD parameters to the population by maximum likelihood and prints
// them as a config snippet on `out`; progress lines go to `progress`.
absl::StatusOr<BgNbdFitReport> FitChurn(const FitChurnOptions& options, std::ostream& out,
                                        std::ostream& progress);

// tend explain: the patient's recent decisions, newest first, one readable line each (and the
// values behind each decision indented below it). Works beside a running engine.
absl::Status ExplainPatient(const std::string& db_dir, const std::string& patient_id, int limit,
                            std::ostream& out);

struct SinkOptions {
  std::string listen = "127.0.0.1:7171";
  std::string out_path;  // empty: in memory only
  ServerSecurity security;  // TLS and the deliver-role tokens (auth/auth.h)
  std::string metrics_listen;  // Prometheus metrics at http://ADDR/metrics; empty: none
};
// tend sink: the reference ReminderSink until `stop`; prints "listening on PORT" first.
absl::Status RunSink(const SinkOptions& options, const std::atomic<bool>& stop, std::ostream& out);


}  // namespace tend

#endif  // TEND_TOOLS_COMMANDS_H_
