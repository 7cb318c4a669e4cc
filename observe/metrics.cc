#include "observe/metrics.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <prometheus/exposer.h>

#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cluster/membership.h"
#include "dispatch/dispatcher.h"
#include "engine/changelog_restore.h"
#include "engine/engine.h"
#include "observe/health.h"
#include "services/full_scans.h"
#include "services/grpc_metrics.h"
#include "services/sink_service.h"
#include "storage/storage.h"

namespace tend {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Families = std::vector<MetricFamily>;
using Labels = std::vector<ClientMetric::Label>;

// The family `name` in `out`, added (with its help and type) on first use.
MetricFamily& Family(Families* out, const std::string& name, const std::string& help,
                     MetricType type) {
  for (MetricFamily& f : *out) {
    if (f.name == name) return f;
  }
  out->push_back({name, help, type, {}});
  return out->back();
}

void Counter(Families* out, const std::string& name, const std::string& help, double value,
             Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  Family(out, name, help, MetricType::Counter).metric.push_back(std::move(m));
}

void Gauge(Families* out, const std::string& name, const std::string& help, double value,
           Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  Family(out, name, help, MetricType::Gauge).metric.push_back(std::move(m));
}

void HistogramMetric(Families* out, const std::string& name, const std::string& help,
                     const Histogram::Snapshot& h, Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    m.histogram.bucket.push_back(
        {cumulative, i < h.bounds.size() ? h.bounds[i] : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = h.sum;
  Family(out, name, help, MetricType::Histogram).metric.push_back(std::move(m));
}

double Seconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

std::string Lower(absl::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A decision's reason as a label: the enum's name in lower case, "none" for no reason.
std::string ReasonLabel(int reason) {
  if (reason == v1::Decision::REASON_UNSPECIFIED) return "none";
  return Lower(v1::Decision::Reason_Name(static_cast<v1::Decision::Reason>(reason)));
}

// What librdkafka's statistics (its STATISTICS.md; JSON every statistics.interval.ms) add to
// the engine's own view: its lag against the group's committed offsets, its pre-fetch queue, the
// log's start (retention), and the brokers' round trips. Unparsable or absent: nothing.
void KafkaFamilies(const std::string& statistics, Families* out) {
  if (statistics.empty()) return;
  google::protobuf::Struct json;
  if (!google::protobuf::util::JsonStringToMessage(statistics, &json).ok()) return;
  const auto& root = json.fields();
  auto number = [](const google::protobuf::Struct& s, const std::string& key) {
    auto it = s.fields().find(key);
    return it == s.fields().end() ? 0.0 : it->second.number_value();
  };
  if (auto topics = root.find("topics"); topics != root.end()) {
    for (const auto& [topic, t] : topics->second.struct_value().fields()) {
      const auto& fields = t.struct_value().fields();
      auto partitions = fields.find("partitions");
      if (partitions == fields.end()) continue;
      for (const auto& [id, p] : partitions->second.struct_value().fields()) {
        const google::protobuf::Struct& ps = p.struct_value();
        // Only the partitions this consumer fetches ("-1" is librdkafka's internal one).
        auto state = ps.fields().find("fetch_state");
        if (id == "-1" || state == ps.fields().end() ||
            state->second.string_value() != "active") {
          continue;
        }
        const Labels partition = {{"partition", id}};
        if (const double lag = number(ps, "consumer_lag"); lag >= 0) {
          Gauge(out, "tend_kafka_group_lag_records",
                "librdkafka's consumer_lag: the log's end minus the group's committed offset "
                "(committed after each commit, for monitoring; tend_consumer_lag_records is "
                "the engine's own).",
                lag, partition);
        }
        Gauge(out, "tend_kafka_fetch_queue_messages",
              "Messages librdkafka has fetched for the partition and the engine not read yet.",
              number(ps, "fetchq_cnt"), partition);
        if (const double lo = number(ps, "lo_offset"); lo >= 0) {
          Gauge(out, "tend_kafka_log_start_offset",
                "The partition's first offset still in the log (retention deletes before it).",
                lo, partition);
        }
      }
    }
  }
  if (auto brokers = root.find("brokers"); brokers != root.end()) {
    for (const auto& [name, b] : brokers->second.struct_value().fields()) {
      const google::protobuf::Struct& bs = b.struct_value();
      auto text = [&](const std::string& key) {
        auto it = bs.fields().find(key);
        return it == bs.fields().end() ? std::string() : it->second.string_value();
      };
      // Real brokers only: not the bootstrap entries without a node id, and not the logical
      // GroupCoordinator entry, which copies its broker's id and name (one series each).
      if (number(bs, "nodeid") < 0 || text("source") == "logical" ||
          text("source") == "internal") {
        continue;
      }
      // A broker never connected to (INIT) is one this consumer does not need: librdkafka
      // connects only to the leaders of its partitions and the coordinator.
      const std::string state = text("state");
      if (state == "INIT") continue;
      const Labels broker = {{"broker", text("nodename").empty() ? name : text("nodename")}};
      Gauge(out, "tend_kafka_broker_up",
            "1 when the consumer's connection to a broker it needs is UP (0: down or "
            "reconnecting).",
            state == "UP" ? 1 : 0, broker);
      if (auto rtt = bs.fields().find("rtt"); rtt != bs.fields().end()) {
        Gauge(out, "tend_kafka_broker_rtt_seconds",
              "Mean request round trip to the broker over the last statistics interval; fetches "
              "include the broker's long-poll wait (fetch.wait.max.ms, 100 ms).",
              number(rtt->second.struct_value(), "avg") / 1e6, broker);
      }
    }
  }
}

void EngineFamilies(const Engine& engine, int64_t cache_max_bytes, Families* out) {
  const EngineStats s = engine.stats();
  KafkaFamilies(engine.KafkaStatistics(), out);
  Counter(out, "tend_records_consumed_total",
          "Records read from the events topic: events, clock ticks and bad records.", s.records);
  Counter(out, "tend_records_folded_total",
          "Events folded into patient state (duplicates and bad records are not).",
          s.events_applied);
  Counter(out, "tend_duplicates_total",
          "Events dropped because their event_id was already folded for the patient.",
          s.duplicates);
  for (size_t i = 0; i < s.dead_lettered_by_reason.size(); ++i) {
    Counter(out, "tend_dead_letters_total",
            "Bad records sent to the dead-letter topic (in a replay: passed over), by the check "
            "they failed.",
            s.dead_lettered_by_reason[i],
            {{"reason", DeadLetterReasonName(static_cast<DeadLetterReason>(i))}});
  }
  Counter(out, "tend_commits_total", "WriteBatches committed (state, timers, outbox, offsets).",
          s.commits);
  Counter(out, "tend_commits_within_record_total",
          "Commits made while one record's due timers fired (a morning burst).",
          s.commits_within_record);
  HistogramMetric(out, "tend_commit_duration_seconds",
                  "Time to write one commit on the committer thread (decided writes added, the "
                  "RocksDB write).",
                  s.commit_seconds);
  HistogramMetric(out, "tend_commit_records", "Records folded and timers fired per commit.",
                  s.commit_records);
  HistogramMetric(out, "tend_commit_bytes", "Size of each commit's WriteBatch in bytes.",
                  s.commit_bytes);
  Gauge(out, "tend_last_commit_timestamp_seconds",
        "When the last commit was written (Unix time; 0 before the first).",
        s.last_commit_at == absl::InfinitePast() ? 0 : Seconds(s.last_commit_at));
  Counter(out, "tend_partition_assignments_total",
          "Partitions assigned to this engine, counted at each assignment (more than the "
          "partition count: the group moved partitions).",
          s.partitions_assigned);
  Gauge(out, "tend_partitions_assigned", "Partitions this engine owns now.",
        static_cast<double>(s.partitions.size()));
  Gauge(out, "tend_partitions_refused",
        "Partitions assigned to this engine whose state it refused (a damaged state changelog "
        "partition): held, not folded, not answered for; the reason is in the log.",
        static_cast<double>(s.refused.size()));
  Gauge(out, "tend_changelog_restoring",
        "1 while a partition assigned here is being restored from the state changelog.",
        s.restoring >= 0 ? 1 : 0);
  for (size_t i = 0; i < s.restores_by.size(); ++i) {
    Counter(out, "tend_changelog_restores_total",
            "Partitions assigned with a state changelog, by what their restore did: current "
            "(nothing to do), tail, whole, seeded (engine/changelog_restore.h).",
            s.restores_by[i], {{"how", RestoreHowName(static_cast<RestoreReport::How>(i))}});
  }
  Counter(out, "tend_changelog_restored_records_total",
          "State changelog records read by restores.", s.restored_records);
  Counter(out, "tend_changelog_restored_commits_total",
          "Complete commits restores applied from the state changelog.", s.restored_commits);
  Counter(out, "tend_changelog_records_total",
          "Records this engine's commits wrote to the state changelog.", s.changelog_records);
  Counter(out, "tend_changelog_removals_total",
          "Outbox removals (delivered or dropped commands) sent to the state changelog.",
          s.changelog_removals);
  int64_t timers_in_memory = 0;
  for (const PartitionStats& p : s.partitions) {
    const Labels partition = {{"partition", std::to_string(p.partition)}};
    timers_in_memory += p.timers_in_window;
    Gauge(out, "tend_partition_next_offset",
          "The next offset of the partition to fold, as of the engine's last commit.",
          static_cast<double>(p.next_offset), partition);
    Gauge(out, "tend_partition_clock_seconds",
          "The partition clock (Unix time): the latest recorded_at folded.", Seconds(p.clock),
          partition);
    if (p.high_watermark >= 0) {
      Gauge(out, "tend_partition_high_watermark",
            "The end of the partition's log as the consumer last heard it from the broker.",
            static_cast<double>(p.high_watermark), partition);
      Gauge(out, "tend_consumer_lag_records",
            "Records in the partition's log past the engine's last commit (high watermark - "
            "next offset).",
            static_cast<double>(p.lag()), partition);
    }
  }
  Counter(out, "tend_cache_lookups_total",
          "Patients looked up in the write-back cache (each event and each fired timer).",
          s.cache_hits + s.cache_misses);
  Counter(out, "tend_cache_hits_total", "Cache lookups that found the patient in memory.",
          s.cache_hits);
  Counter(out, "tend_cache_misses_total",
          "Cache lookups that read the patient from RocksDB (found or not).", s.cache_misses);
  Counter(out, "tend_cache_evictions_total",
          "Patients the cache let go to stay within its bound.", s.cache_evictions);
  Gauge(out, "tend_cache_bytes", "The write-back cache's estimated size in bytes.",
        s.cache_bytes);
  Gauge(out, "tend_cache_max_bytes", "The write-back cache's configured bound in bytes.",
        static_cast<double>(cache_max_bytes));
  Gauge(out, "tend_cache_patients", "Patients in the write-back cache.", s.cache_patients);
  Counter(out, "tend_timers_fired_total",
          "Timer keys that fell due: patients' alarms, each firing the patient's absence and "
          "schedule timers due that second.",
          s.timers_fired);
  Gauge(out, "tend_timers_in_memory",
        "Timer keys (patients' alarms) held in memory (each partition's window of the earliest).",
        static_cast<double>(timers_in_memory));
  Counter(out, "tend_timer_window_loads_total", "Timer windows read from RocksDB.",
          s.timer_loads);
  Counter(out, "tend_commands_total",
          "Commands decided by the rules (LIVE: written to the outbox).", s.commands);
  // Decisions by outcome and reason: every pair the rules can make is exported from the start
  // (0 until it happens), so rate() sees a series' first increase.
  const int reasons = EngineStats::kDecisionReasons;
  auto possible = [](int outcome, int reason) {
    switch (outcome) {
      case v1::Decision::FIRED:
      case v1::Decision::DEFERRED:
        return reason == v1::Decision::REASON_UNSPECIFIED;
      case v1::Decision::SUPPRESSED:
        return reason != v1::Decision::REASON_UNSPECIFIED && reason != v1::Decision::EXPIRED &&
               reason != v1::Decision::REJECTED;
      default:
        return false;  // DROPPED: the dispatcher's (below)
    }
  };
  for (size_t i = 0; i < s.decisions_by.size(); ++i) {
    const int outcome = static_cast<int>(i) / reasons, reason = static_cast<int>(i) % reasons;
    if (s.decisions_by[i] == 0 && !possible(outcome, reason)) continue;
    Counter(out, "tend_decisions_total",
            "Rule decisions recorded, by outcome and reason (DROPPED: by the dispatcher).",
            s.decisions_by[i],
            {{"outcome", Lower(v1::Decision::Outcome_Name(
                             static_cast<v1::Decision::Outcome>(outcome)))},
             {"reason", ReasonLabel(reason)}});
  }
}

void StorageFamilies(const Storage& storage, Families* out) {
  const StorageStats s = storage.stats();
  for (const StorageStats::ColumnFamily& cf : s.column_families) {
    const Labels label = {{"column_family", cf.name}};
    Gauge(out, "tend_rocksdb_sst_bytes", "Bytes of the column family's SST files.",
          static_cast<double>(cf.sst_bytes), label);
    Gauge(out, "tend_rocksdb_memtable_bytes", "Bytes of the column family's memtables.",
          static_cast<double>(cf.memtable_bytes), label);
    Gauge(out, "tend_rocksdb_estimated_keys",
          "RocksDB's estimate of the column family's keys (deletions make it approximate).",
          static_cast<double>(cf.estimated_keys), label);
    Gauge(out, "tend_rocksdb_pending_compaction_bytes",
          "Bytes RocksDB estimates compaction must rewrite to settle the column family.",
          static_cast<double>(cf.pending_compaction_bytes), label);
    if (cf.name == "timers") {
      Gauge(out, "tend_timers_pending",
            "Timer keys (patients' alarms) in the state directory (RocksDB's estimate).",
            static_cast<double>(cf.estimated_keys));
    }
  }
  Gauge(out, "tend_rocksdb_block_cache_bytes", "Bytes in RocksDB's shared block cache.",
        static_cast<double>(s.block_cache_bytes));
  if (s.wal_bytes >= 0) {
    Gauge(out, "tend_rocksdb_wal_bytes",
          "Bytes of the WAL files RocksDB keeps: what an open after a crash replays.",
          static_cast<double>(s.wal_bytes));
  }
  const std::string stall_help =
      "Time during which RocksDB's write controller slowed (delayed) or stopped writes.";
  Counter(out, "tend_rocksdb_stall_seconds_total", stall_help, absl::ToDoubleSeconds(s.delayed),
          {{"condition", "delayed"}});
  Counter(out, "tend_rocksdb_stall_seconds_total", stall_help, absl::ToDoubleSeconds(s.stopped),
          {{"condition", "stopped"}});
  if (s.outbox_commands >= 0) {
    Gauge(out, "tend_outbox_commands",
          "Commands in the outbox: decided, not yet acknowledged by the sink (deferred ones too).",
          static_cast<double>(s.outbox_commands));
  }
}

void DispatcherFamilies(const Dispatcher& dispatcher, Families* out) {
  const DispatcherStats s = dispatcher.stats();
  const std::string help =
      "Delivery attempts to the ReminderSink by result (failed: retried, or dropped when it "
      "expires).";
  const std::pair<const char*, int64_t> results[] = {{"delivered", s.delivered},
                                                     {"duplicate", s.duplicates},
                                                     {"expired", s.expired},
                                                     {"rejected", s.rejected},
                                                     {"failed", s.failed_attempts}};
  for (const auto& [result, n] : results) {
    Counter(out, "tend_deliveries_total", help, n, {{"result", result}});
  }
  HistogramMetric(out, "tend_delivery_duration_seconds",
                  "Each delivery attempt's call to the ReminderSink, whatever its result.",
                  s.attempt_seconds);
  Gauge(out, "tend_deliveries_retrying",
        "Commands waiting for their next delivery attempt (with their patients' held behind).",
        s.retrying);
  const double age = s.oldest_due == absl::InfiniteFuture()
                         ? 0
                         : std::max(0.0, absl::ToDoubleSeconds(absl::Now() - s.oldest_due));
  Gauge(out, "tend_outbox_oldest_due_age_seconds",
        "How long the oldest due, undelivered command has been due (0: none waiting).", age);
  Counter(out, "tend_outbox_read_errors_total",
          "Reads of the outbox that failed (retried with backoff).", s.read_errors);
  Gauge(out, "tend_outbox_unreadable_partitions",
        "Partitions whose outbox cannot be read now.", s.unreadable_partitions);
  const std::string decisions_help =
      "Rule decisions recorded, by outcome and reason (DROPPED: by the dispatcher).";
  Counter(out, "tend_decisions_total", decisions_help, s.expired,
          {{"outcome", "dropped"}, {"reason", "expired"}});
  Counter(out, "tend_decisions_total", decisions_help, s.rejected,
          {{"outcome", "dropped"}, {"reason", "rejected"}});
}

// gRPC's status codes by name, as the label value (grpc::StatusCode's order).
const char* CodeName(int code) {
  static const char* const kNames[GrpcMetrics::kCodes] = {
      "OK",        "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT",  "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS",        "UNAUTHENTICATED"};
  return kNames[code];
}

void GrpcFamilies(const GrpcMetrics& grpc, Families* out) {
  for (const GrpcMetrics::MethodSnapshot& m : grpc.Read()) {
    for (int code = 0; code < GrpcMetrics::kCodes; ++code) {
      const int64_t n = m.calls[static_cast<size_t>(code)];
      if (n == 0 && code != 0) continue;  // OK from the start; the others once they happen
      Counter(out, "tend_grpc_requests_total",
              "gRPC calls served, by service, method and status code.", n,
              {{"service", m.service}, {"method", m.method}, {"code", CodeName(code)}});
    }
    HistogramMetric(out, "tend_grpc_request_duration_seconds",
                    "gRPC calls' time from their start to their status, by service and method.",
                    m.seconds, {{"service", m.service}, {"method", m.method}});
  }
}

}  // namespace

MetricsCollector::MetricsCollector() {
  own_ = Add([this](Families* out) {
    Gauge(out, "tend_build_info", "The tend version serving these metrics (always 1).", 1,
          {{"version", "0.1.0"}});
    Gauge(out, "tend_state_refused",
          "1 while the state directory is refused (damaged, or of another version): the process "
          "serves only to say so.",
          state_refused_.load() ? 1 : 0);
  });
}

MetricsCollector::Registration MetricsCollector::AddEngine(const Engine* engine,
                                                           int64_t cache_max_bytes) {
  return Add(
      [engine, cache_max_bytes](Families* out) { EngineFamilies(*engine, cache_max_bytes, out); });
}
MetricsCollector::Registration MetricsCollector::AddStorage(const Storage* storage) {
  return Add([storage](Families* out) { StorageFamilies(*storage, out); });
}
MetricsCollector::Registration MetricsCollector::AddDispatcher(const Dispatcher* dispatcher) {
  return Add([dispatcher](Families* out) { DispatcherFamilies(*dispatcher, out); });
}
MetricsCollector::Registration MetricsCollector::AddGrpc(const GrpcMetrics* grpc) {
  return Add([grpc](Families* out) { GrpcFamilies(*grpc, out); });
}
MetricsCollector::Registration MetricsCollector::AddCohortScans(const FullScans* scans) {
  return Add([scans](Families* out) {
    Gauge(out, "tend_cohort_scans_running",
          "Reads of every patient running now (CohortStats, and this instance's parts of gathered "
          "ones).",
          scans->running());
    Gauge(out, "tend_cohort_scans_max",
          "The bound on reads of every patient running at once (--max-cohort-scans).",
          scans->max());
    Counter(out, "tend_cohort_scans_refused_total",
            "Reads of every patient refused at the bound (RESOURCE_EXHAUSTED with a retry hint).",
            static_cast<double>(scans->refused()));
    Counter(out, "tend_cohort_scans_stopped_total",
            "Reads of every patient stopped before their end: the caller cancelled, went away or "
            "passed its deadline, or another instance's part of a gathered read failed.",
            static_cast<double>(scans->stopped()));
  });
}
MetricsCollector::Registration MetricsCollector::AddSink(const SinkService* sink) {
  return Add([sink](Families* out) {
    Counter(out, "tend_sink_accepted_total", "Commands the sink accepted (first deliveries).",
            sink->accepted());
    Counter(out, "tend_sink_duplicates_total",
            "Deliveries of commands the sink had accepted before (acknowledged, not acted on).",
            sink->duplicates());
  });
}
MetricsCollector::Registration MetricsCollector::AddHealth(const HealthGate* health) {
  return Add([health](Families* out) {
    Gauge(out, "tend_serving",
          "1 when the engine serves (partitions assigned and caught up within the configured "
          "lag), else 0: what the gRPC health service answers.",
          health->serving() ? 1 : 0);
  });
}

MetricsCollector::Registration MetricsCollector::AddMembership(const Membership* membership) {
  return Add([membership](Families* out) {
    const MembershipStats s = membership->Stats();
    const std::string help =
        "Member records read from the membership topic, by what was done with them: heard; "
        "heard_unsigned (no MAC, heard as --unsigned-membership allows during a move to signed "
        "records); or ignored as unsigned (no MAC under a key of --cluster-key-file), replayed "
        "(not written after the last record heard of its instance) or beyond_bounds (beyond "
        "what any deployment writes). Records ignored are counted from this instance's start.";
    for (const auto& [result, count] : {std::pair<const char*, int64_t>{"heard", s.heard},
                                        {"heard_unsigned", s.heard_unsigned},
                                        {"unsigned", s.unsigned_records},
                                        {"replayed", s.replayed},
                                        {"beyond_bounds", s.beyond_bounds}}) {
      Counter(out, "tend_membership_records_total", help, static_cast<double>(count),
              {{"result", result}});
    }
    Gauge(out, "tend_membership_live_instances",
          "Instances this one has heard from within the expiry and that are not leaving, itself "
          "included.",
          static_cast<double>(s.live_members));
  });
}

std::vector<prometheus::MetricFamily> MetricsCollector::Collect() const {
  Families out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, part] : parts_) part(&out);
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen, std::shared_ptr<MetricsCollector> collector) {
  // HOST:PORT, HOST a name or an IPv4 address (civetweb's own syntax differs: checked here).
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-listen \"", listen, "\": expected HOST:PORT, e.g. 127.0.0.1:9464 (port 0: any "
        "free port)"));
  }
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  endpoint->collector_ = std::move(collector);
  try {
    // Workers enough that idle connections do not hold them all, and a connection that sends
    // no request is dropped after a second: with 4 workers and 5 s, 24 connections that sent
    // nothing kept a scrape waiting 13-19 s, past Prometheus' 10 s timeout (a false TendDown).
    // More connections than threads wait in the listen queue.
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", listen, "num_threads", "16", "request_timeout_ms", "1000"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, " (address in use?): ", e.what()));
  }
  endpoint->exposer_->RegisterCollectable(endpoint->collector_);
  const std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen));
  }
  endpoint->port_ = ports.front();
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() = default;

}  // namespace tend
