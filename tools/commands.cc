#include "tools/commands.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "auth/auth.h"
#include "auth/record_mac.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/printable.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "base/thread_name.h"
#include "base/time.h"
#include "cluster/membership.h"
#include "cluster/router.h"
#include "dispatch/dispatcher.h"
#include "events/codec.h"
#include "observe/health.h"
#include "observe/metrics.h"
#include "projections/bgnbd.h"
#include "projections/churn.h"
#include "projections/patient.h"
#include "rules/rules.h"
#include "services/full_scans.h"
#include "services/ingest_service.h"
#include "services/peer_service.h"
#include "services/query_service.h"
#include "services/server.h"
#include "services/sink_service.h"
#include "storage/storage.h"
#include "storage/views.h"
#include "tools/dump_format.h"

namespace tend {

absl::Status ExplainPatient(const std::string& db_dir, const std::string& patient_id, int limit,
                            std::ostream& out) {
  // Not echoed: an argument that cannot be a patient id may hold anything.
  TEND_RETURN_IF_ERROR(CheckIdArgument("PATIENT", patient_id));
  TEND_ASSIGN_OR_RETURN(ScopedTempDir scratch, ScopedTempDir::Create("tend-explain-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::OpenReader(db_dir, scratch.path()));
  TEND_ASSIGN_OR_RETURN(auto decisions, storage->RecentDecisions(patient_id, limit));
  if (decisions.empty()) {
    out << "no decisions recorded for " << patient_id << "\n";
    return absl::OkStatus();
  }
  for (const auto& d : decisions) {
    out << google::protobuf::util::TimeUtil::ToString(d.at()) << "  " << d.rule_id() << " v"
        << d.rule_version() << "  " << v1::Decision::Outcome_Name(d.outcome());
    if (d.reason() != v1::Decision::REASON_UNSPECIFIED) {
      out << " (" << v1::Decision::Reason_Name(d.reason()) << ")";
    }
    // Triggers, details and checks may quote an event's free text: escaped (base/printable.h).
    out << "  trigger " << Printable(d.trigger());
    if (!d.command_id().empty()) out << "  command " << d.command_id();
    out << "\n";
    if (!d.detail().empty()) out << "    " << Printable(d.detail()) << "\n";
    if (d.reason() == v1::Decision::HOLDOUT) {
      out << "    held out by experiment " << d.experiment_id() << ": withheld "
          << d.withheld().template_id() << " to "
          << v1::ReminderCommand::Recipient_Name(d.withheld().recipient()) << "\n";
    }
    for (const auto& c : d.explanation().checks()) {
      out << "    " << c.field() << " " << c.op() << " " << Printable(c.expected()) << ": actual "
          << Printable(c.actual()) << (c.held() ? " (held)" : " (did not hold)") << "\n";
    }
  }
  return absl::OkStatus();
}

absl::Status RunSink(const SinkOptions& options, const std::atomic<bool>& stop, std::ostream& out) {
  TEND_ASSIGN_OR_RETURN(ServerAuth auth, MakeServerAuth(options.security, options.listen));
  TEND_ASSIGN_OR_RETURN(auto sink, SinkService::Create(options.out_path, /*keep_commands=*/false));
  sink->set_authorizer(auth.authorizer);
  GrpcMetrics grpc_metrics({v1::ReminderSink::service_full_name()});
  ServerOptions server_options;
  server_options.credentials = auth.credentials;
  server_options.reflection = options.security.reflection;
  server_options.metrics = &grpc_metrics;
  server_options.health_services = {v1::ReminderSink::service_full_name()};
  TEND_ASSIGN_OR_RETURN(RunningServer server,
                        StartGrpcServer(options.listen, {sink.get()}, server_options));
  server.SetServing(true);  // the file was read back: nothing to wait for
  auto collector = std::make_shared<MetricsCollector>();
  const auto sink_metrics = collector->AddSink(sink.get());
  const auto grpc_registration = collector->AddGrpc(&grpc_metrics);
  std::unique_ptr<MetricsEndpoint> metrics;
  if (!options.metrics_listen.empty()) {
    TEND_ASSIGN_OR_RETURN(metrics, MetricsEndpoint::Start(options.metrics_listen, collector));
    TEND_LOG_INFO("metrics on http://%s/metrics (port %d)", options.metrics_listen, metrics->port());
  }
  out << "listening on " << server.port << std::endl;
  TEND_LOG_INFO("tend.v1.ReminderSink on port %d; %d commands already recorded in %s; Ctrl-C stops",
                server.port, sink->accepted(), options.out_path.empty() ? "memory" : options.out_path);
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  TEND_LOG_INFO("sink stopped: %d commands accepted, %d duplicates acknowledged", sink->accepted(),
                sink->duplicates());
  return absl::OkStatus();
}

std::string FormatEngineStatus(const EngineStats& now, const EngineStats& before,
                               absl::Duration elapsed, bool rules,
                               const DispatcherStats* dispatcher) {
  const double seconds = std::max(1e-9, absl::ToDoubleSeconds(elapsed));
  std::string line = absl::StrFormat(
      "status: %d records (+%d in %.0f s, %.0f/s), %d events applied, %d duplicates dropped, "
      "%d dead-lettered, %d commits",
      now.records, now.records - before.records, seconds,
      static_cast<double>(now.records - before.records) / seconds, now.events_applied,
      now.duplicates, now.dead_lettered, now.commits);
  absl::StrAppendFormat(&line, "; cache: %d patients, %.0f MiB, %d misses (+%d), %d evicted",
                        now.cache_patients, static_cast<double>(now.cache_bytes) / (1 << 20),
                        now.cache_misses, now.cache_misses - before.cache_misses,
                        now.cache_evictions);
  if (now.restoring >= 0) {
    absl::StrAppendFormat(&line, "; RESTORING partition %d from the state changelog",
                          now.restoring);
  }
  if (!now.refused.empty()) {
    std::vector<int32_t> refused;
    for (const RefusedPartition& r : now.refused) refused.push_back(r.partition);
    absl::StrAppendFormat(&line, "; PARTITIONS REFUSED, held and not folded: %s (the reason "
                          "was logged when each was assigned)", absl::StrJoin(refused, ", "));
  }
  if (now.restored_records > before.restored_records) {
    absl::StrAppendFormat(&line, "; changelog: %d records restored (+%d)", now.restored_records,
                          now.restored_records - before.restored_records);
  }
  if (rules) {
    absl::StrAppendFormat(&line, "; rules: %d timers fired, %d decisions, %d commands (+%d)",
                          now.timers_fired, now.decisions, now.commands,
                          now.commands - before.commands);
  }
  if (dispatcher != nullptr) {
    absl::StrAppendFormat(&line,
                          "; sink: %d delivered, %d duplicates, %d expired, %d rejected, %d "
                          "waiting to be retried",
                          dispatcher->delivered, dispatcher->duplicates, dispatcher->expired,
                          dispatcher->rejected, dispatcher->retrying);
    if (dispatcher->unreadable_partitions > 0) {
      absl::StrAppendFormat(&line, "; OUTBOX UNREADABLE in %d partition(s), backing off (%d failed "
                            "reads): %s",
                            dispatcher->unreadable_partitions, dispatcher->read_errors,
                            dispatcher->read_error);
    }
  }
  return line;
}

namespace {

// The engine's state directory. Refused (damaged, another version, held by another process)
// while something listens (gRPC, metrics), the engine stays up and says so - health
// NOT_SERVING, Query UNAVAILABLE, tend_state_refused 1 - and tries again every 10 s, never
// creating it anew: a lock the previous process still held frees, an operator restores the
// directory (an empty state made between their `mv`s would fold from the start of the log). A
// restart loop would say nothing more (docs/design.md, "Observability"). The refusal is returned
// when stopped first, or when nothing listens.
absl::StatusOr<std::unique_ptr<Storage>> OpenStateDirectory(
    const EngineCommandOptions& options, const ServerOptions& server_options,
    std::shared_ptr<const Authorizer> authorizer, bool metrics, MetricsCollector* collector,
    const std::atomic<bool>& stop) {
  auto opened = Storage::Open(options.db_dir, options.storage);
  if (opened.ok() || (options.grpc_listen.empty() && !metrics)) return opened;
  UnavailableQueryService unavailable(
      absl::StrCat("this engine's state directory is refused: ", opened.status().message()));
  unavailable.set_authorizer(std::move(authorizer));
  RunningServer refused;
  if (!options.grpc_listen.empty()) {
    TEND_ASSIGN_OR_RETURN(refused,
                          StartGrpcServer(options.grpc_listen, {&unavailable}, server_options));
    TEND_LOG_INFO("gRPC (grpc.health.v1.Health, tend.v1.Query answering UNAVAILABLE) listening "
                  "on port %d", refused.port);
  }
  collector->SetStateRefused(true);
  TEND_LOG_ERROR("the state directory is refused: %s. Answering NOT_SERVING (gRPC health%s) "
                 "and trying again every 10 s until stopped",
                 opened.status().ToString(), metrics ? ", tend_state_refused 1" : "");
  std::string last = opened.status().ToString();
  StorageOptions reopen = options.storage;
  reopen.create_if_missing = false;
  while (!opened.ok() && !stop.load()) {
    for (int i = 0; i < 100 && !stop.load(); ++i) absl::SleepFor(absl::Milliseconds(100));
    if (stop.load()) break;
    opened = Storage::Open(options.db_dir, reopen);
    if (!opened.ok() && opened.status().ToString() != last) {
      last = opened.status().ToString();
      TEND_LOG_ERROR("the state directory is still refused: %s", last);
    }
  }
  if (refused.server) refused.server->Shutdown(std::chrono::system_clock::now());
  if (opened.ok()) {
    collector->SetStateRefused(false);
    TEND_LOG_INFO("the state directory opened; starting");
  }
  return opened;
}

}  // namespace

absl::Status RunEngine(const EngineCommandOptions& options, const std::atomic<bool>& stop) {
  if (options.db_dir.empty()) return absl::InvalidArgumentError("--db is required");
  if (!options.advertise.empty() && options.grpc_listen.empty()) {
    return absl::InvalidArgumentError("--advertise needs --grpc-listen (the address it names)");
  }
  if (!options.advertise.empty() && options.peer_security.tls_ca.empty() &&
      !IsLoopbackAddress(options.advertise) && !options.grpc_security.allow_plaintext) {
    return absl::FailedPreconditionError(
        "--advertise off loopback forwards callers' tokens to the other instances: give "
        "--peer-tls-ca (the CA of their certificates), or --plaintext when TLS ends at a mesh");
  }
  // Member records name where queries and callers' tokens go: off loopback, the deployment's key
  // signs and checks them (cluster/membership.h), unless the operator says ACLs alone guard the
  // topic.
  std::shared_ptr<const RecordKeys> cluster_keys;
  if (options.unsigned_membership && options.advertise.empty()) {
    return absl::InvalidArgumentError(
        "--unsigned-membership needs --advertise (it says how the records of "
        "--membership-topic are heard; without --advertise the engine reads none)");
  }
  if (!options.cluster_key_file.empty()) {
    if (options.advertise.empty()) {
      return absl::InvalidArgumentError(
          "--cluster-key-file needs --advertise (it signs and checks the records of "
          "--membership-topic)");
    }
    TEND_ASSIGN_OR_RETURN(cluster_keys, RecordKeys::Load(options.cluster_key_file));
  } else if (!options.advertise.empty() && !IsLoopbackAddress(options.advertise) &&
             !options.unsigned_membership) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--advertise off loopback: a record on ", options.membership_topic,
        " names where queries and callers' tokens go, and whoever may write that topic could "
        "name any address. Give --cluster-key-file FILE (the same key on every instance, chmod "
        "600; `openssl rand -hex 32` makes one), or --unsigned-membership where Kafka ACLs alone "
        "keep everyone but the engines from writing it"));
  }
  // Security settings are checked before anything is opened: a refused one costs nothing.
  ServerAuth auth;
  if (!options.grpc_listen.empty()) {
    TEND_ASSIGN_OR_RETURN(auth, MakeServerAuth(options.grpc_security, options.grpc_listen));
  }
  // Metrics first: an operator sees the process from its start, a refused state directory too.
  auto collector = std::make_shared<MetricsCollector>();
  std::unique_ptr<MetricsEndpoint> metrics;
  if (!options.metrics_listen.empty()) {
    TEND_ASSIGN_OR_RETURN(metrics, MetricsEndpoint::Start(options.metrics_listen, collector));
    TEND_LOG_INFO("metrics on http://%s/metrics (port %d)", options.metrics_listen, metrics->port());
  }
  GrpcMetrics grpc_metrics({v1::Ingest::service_full_name(), v1::Query::service_full_name(),
                            v1::Peer::service_full_name()});
  ServerOptions server_options;
  server_options.credentials = auth.credentials;
  server_options.reflection = options.grpc_security.reflection;
  server_options.metrics = &grpc_metrics;
  // Query answers from the state: it serves once the engine caught up. Ingest only produces to
  // Kafka: it serves from the start.
  server_options.health_services = {v1::Query::service_full_name()};
  TEND_ASSIGN_OR_RETURN(std::unique_ptr<Storage> storage,
                        OpenStateDirectory(options, server_options, auth.authorizer,
                                           metrics != nullptr,
                                           collector.get(), stop));
  // Each source leaves the metrics before it goes (its registration is destroyed first).
  const auto storage_metrics = collector->AddStorage(storage.get());
  const auto grpc_registration = collector->AddGrpc(&grpc_metrics);
  std::unique_ptr<Producer> producer;
  std::unique_ptr<IngestService> ingest;
  std::unique_ptr<QueryService> query;
  // The engine whose refused partitions a query service without a router reads (set while the
  // engine lives).
  struct Refusing {
    absl::Mutex mu;
    const Engine* engine ABSL_GUARDED_BY(mu) = nullptr;
  };
  auto refusing = std::make_shared<Refusing>();
  std::shared_ptr<ClusterRouter> router;  // with --advertise
  std::unique_ptr<PeerService> peer;       // with --advertise
  // One bound on cohort reads for Query and Peer.
  const auto full_scans = std::make_shared<FullScans>(options.max_cohort_scans);
  MetricsCollector::Registration full_scans_metrics;  // with a gRPC server
  RunningServer server;
  // The server comes up NOT_SERVING before the engine opens (a patient index to rebuild, the
  // partitions to catch up with): the health gate says when it serves.
  if (!options.grpc_listen.empty()) {
    KafkaProps props = {{"bootstrap.servers", options.engine.brokers}};
    props.insert(props.end(), options.engine.kafka.begin(), options.engine.kafka.end());
    TEND_ASSIGN_OR_RETURN(producer, Producer::Create(props));
    ingest = std::make_unique<IngestService>(producer.get(), options.engine.topic,
                                             options.engine.validation);
    query = std::make_unique<QueryService>(storage.get(), options.engine.projections);
    ingest->set_authorizer(auth.authorizer);
    query->set_authorizer(auth.authorizer);
    query->set_full_scans(full_scans);
    full_scans_metrics = collector->AddCohortScans(full_scans.get());
    if (options.engine.rules != nullptr) query->set_experiments(ArmSplitsOf(*options.engine.rules));
    if (options.advertise.empty() && !options.engine.changelog_topic.empty()) {
      // Only a restore refuses a partition. The engine comes later and goes first.
      query->set_refused([refusing] {
        std::vector<std::pair<int32_t, std::string>> out;
        absl::MutexLock lock(&refusing->mu);
        if (refusing->engine == nullptr) return out;
        for (RefusedPartition& r : refusing->engine->RefusedPartitions()) {
          out.emplace_back(r.partition, std::move(r.why));
        }
        return out;
      });
    }
    if (!options.advertise.empty()) {
      TEND_ASSIGN_OR_RETURN(const int partitions,
                            TopicPartitionCount(producer->handle(), options.engine.topic));
      router = std::make_shared<ClusterRouter>(options.advertise, partitions,
                                               options.peer_security,
                                               options.grpc_security.allow_plaintext);
      query->set_router(router);
      peer = std::make_unique<PeerService>(storage.get(), options.engine.projections, router);
      peer->set_authorizer(auth.authorizer);
      peer->set_full_scans(full_scans);
      if (options.engine.rules != nullptr) {
        peer->set_experiments(ArmSplitsOf(*options.engine.rules));
      }
    }
    server_options.serving_services = {v1::Ingest::service_full_name()};
    std::vector<grpc::Service*> services = {ingest.get(), query.get()};
    if (peer != nullptr) services.push_back(peer.get());
    TEND_ASSIGN_OR_RETURN(server, StartGrpcServer(options.grpc_listen, services, server_options));
    const ServerSecurity& sec = options.grpc_security;
    TEND_LOG_INFO("gRPC (tend.v1.Ingest, tend.v1.Query%s, grpc.health.v1.Health%s) listening "
                  "on port %d: %s, %s",
                  peer != nullptr ? ", tend.v1.Peer" : "", sec.reflection ? ", reflection" : "",
                  server.port,
                  sec.tls_cert.empty() ? "plaintext"
                                       : (sec.tls_client_ca.empty() ? "TLS" : "mutual TLS"),
                  auth.authorizer ? "tokens required" : "no tokens");
  }
  EngineOptions engine_options = options.engine;
  if (metrics) {
    // librdkafka's statistics for the metrics (observe/metrics.cc KafkaFamilies): every 5 s,
    // unless the operator's --kafka says otherwise (theirs come later and win).
    engine_options.kafka.insert(engine_options.kafka.begin(), {"statistics.interval.ms", "5000"});
  }
  TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
  {
    absl::MutexLock lock(&refusing->mu);
    refusing->engine = engine.get();
  }
  absl::Cleanup unrefusing = [&refusing] {
    absl::MutexLock lock(&refusing->mu);
    refusing->engine = nullptr;
  };
  const auto engine_metrics = collector->AddEngine(engine.get(), options.engine.cache_max_bytes);
  std::unique_ptr<Membership> membership;
  if (router != nullptr) {
    MembershipOptions m;
    m.kafka = {{"bootstrap.servers", options.engine.brokers}};
    m.kafka.insert(m.kafka.end(), options.engine.kafka.begin(), options.engine.kafka.end());
    m.topic = options.membership_topic;
    m.events_topic = options.engine.topic;
    m.address = options.advertise;
    m.keys = cluster_keys;
    m.accept_unsigned = options.unsigned_membership;
    m.owned = [e = engine.get()] { return e->OwnedPartitions(); };
    m.refused = [e = engine.get()] {
      std::map<int32_t, std::string> refused;
      for (RefusedPartition& r : e->RefusedPartitions()) refused[r.partition] = std::move(r.why);
      return refused;
    };
    TEND_ASSIGN_OR_RETURN(membership, Membership::Start(std::move(m)));
    router->Attach(engine.get(), membership.get());
  }
  // Let go of before the membership goes (below, or on an early return).
  MetricsCollector::Registration membership_metrics;
  if (membership != nullptr) membership_metrics = collector->AddMembership(membership.get());
  // Whatever way this function returns, the router lets go of the engine and the membership
  // before they go (the server, still up, may route a call meanwhile).
  absl::Cleanup detach = [&router] {
    if (router != nullptr) router->Attach(nullptr, nullptr);
  };
  if (router != nullptr) {
    TEND_LOG_INFO(
        "advertising %s in %s: Query's GetPatient and Explain go to the owner of the "
        "patient's partition, CohortStats and ListPatients gather from every owner "
        "(tend.v1.Peer); %s",
        options.advertise, options.membership_topic,
        cluster_keys == nullptr ? "member records unsigned, every one heard"
        : options.unsigned_membership
            ? "member records signed, and those without a MAC heard too "
              "(--unsigned-membership: drop it once every instance has the key)"
            : "member records signed, only signed ones heard");
  }
  HealthOptions health_options;
  health_options.max_lag = options.health_max_lag;
  HealthGate health(engine.get(), server.server ? &server : nullptr, health_options);
  const auto health_metrics = collector->AddHealth(&health);
  std::unique_ptr<Dispatcher> dispatcher;
  MetricsCollector::Registration dispatcher_metrics;
  if (!options.sink.empty()) {
    DispatcherOptions d;
    d.sink.target = options.sink;
    d.sink.security = options.sink_security;
    d.max_in_flight = options.sink_in_flight;
    // Only the partitions this engine owns; their removals go to the state changelog.
    d.owns = [e = engine.get()](int32_t partition) { return e->Owns(partition); };
    d.on_removed = [e = engine.get()](const std::vector<OutboxRemoval>& removals) {
      e->OnOutboxRemoved(removals);
    };
    TEND_ASSIGN_OR_RETURN(dispatcher, Dispatcher::Start(d, storage.get()));
    dispatcher_metrics = collector->AddDispatcher(dispatcher.get());
    TEND_LOG_INFO("dispatching reminder commands to tend.v1.ReminderSink at %s", options.sink);
  }
  // LIVE mode keeps the partition clocks moving (docs/design.md, "Time is in the log", "Run
  // modes").
  std::atomic<bool> stop_ticker{false};
  std::thread ticker_thread;
  if (!options.sink.empty() && options.tick_interval > absl::ZeroDuration()) {
    TickerOptions t;
    t.brokers = options.engine.brokers;
    t.topic = options.engine.topic;
    t.interval = options.tick_interval;
    t.kafka = options.engine.kafka;
    TEND_ASSIGN_OR_RETURN(auto ticker, Ticker::Create(t));
    TEND_LOG_INFO("writing clock ticks to every partition of %s every %s", t.topic,
                  absl::FormatDuration(t.interval));
    ticker_thread = std::thread([ticker = std::move(ticker), &stop_ticker] {
      SetThreadName("tend-ticker");
      while (!stop_ticker.load()) {
        absl::Status s = ticker->Run(stop_ticker);
        if (s.ok()) break;
        TEND_LOG_WARN("clock tick failed (retrying in 5 s): %s", s.ToString());
        for (int i = 0; i < 100 && !stop_ticker.load(); ++i) absl::SleepFor(absl::Milliseconds(50));
      }
    });
  }
  // A status line now and then: a long-running engine otherwise says nothing until it stops.
  std::atomic<bool> stop_status{false};
  std::thread status_thread;
  if (options.status_interval > absl::ZeroDuration()) {
    status_thread = std::thread([&] {
      SetThreadName("tend-status");
      EngineStats before = engine->stats();
      absl::Time last = absl::Now();
      while (!stop_status.load()) {
        for (absl::Time until = last + options.status_interval;
             !stop_status.load() && absl::Now() < until;) {
          absl::SleepFor(absl::Milliseconds(50));
        }
        if (stop_status.load()) break;
        const EngineStats now = engine->stats();
        const absl::Time at = absl::Now();
        std::optional<DispatcherStats> ds;
        if (dispatcher) ds = dispatcher->stats();
        TEND_LOG_INFO("%s", FormatEngineStatus(now, before, at - last, options.engine.rules != nullptr,
                                             ds ? &*ds : nullptr));
        before = now;
        last = at;
      }
    });
  }
  TEND_LOG_INFO("engine folding %s from %s into %s%s", options.engine.topic, options.engine.brokers,
                options.db_dir,
                options.engine.rules ? absl::StrCat(" with ", options.engine.rules->rules().size(),
                                                    " rules")
                                     : "");
  absl::Status s = engine->Run(stop);
  health.Stop();  // NOT_SERVING from here: the state no longer follows the log
  stop_ticker = true;
  if (ticker_thread.joinable()) ticker_thread.join();
  stop_status = true;
  if (status_thread.joinable()) status_thread.join();
  if (dispatcher) {
    DispatcherStats ds = dispatcher->stats();
    dispatcher_metrics = {};
    dispatcher.reset();
    TEND_LOG_INFO("dispatcher stopped: %d delivered, %d duplicates, %d expired, %d rejected",
                  ds.delivered, ds.duplicates, ds.expired, ds.rejected);
  }
  if (server.server) server.server->Shutdown(std::chrono::system_clock::now() +
                                             std::chrono::seconds(2));
  std::move(detach).Invoke();
  membership_metrics = MetricsCollector::Registration();  // a scrape no longer reads it
  membership.reset();                                     // says this instance leaves
  EngineStats st = engine->stats();
  TEND_LOG_INFO("engine stopped: %d records, %d events applied, %d duplicates dropped, "
                "%d dead-lettered, %d commits, %d timers fired, %d decisions, %d commands",
                st.records, st.events_applied, st.duplicates, st.dead_lettered, st.commits,
                st.timers_fired, st.decisions, st.commands);
  return s;
}

absl::Status RunTicker(const TickerOptions& options, const std::atomic<bool>& stop) {
  TEND_ASSIGN_OR_RETURN(auto ticker, Ticker::Create(options));
  TEND_LOG_INFO("writing clock ticks to every partition of %s at %s every %s", options.topic,
                options.brokers, absl::FormatDuration(options.interval));
  absl::Status s = ticker->Run(stop);
  TEND_LOG_INFO("ticker stopped after %d ticks", ticker->ticks());
  return s;
}

absl::StatusOr<ProduceReport> ProduceJsonl(std::istream& in, Producer* producer,
                                           const std::string& topic, std::ostream& errors,
                                           const ProduceJsonlOptions& options) {
  ProduceReport report;
  auto acked = std::make_shared<std::atomic<int64_t>>(0);
  std::string line;
  bool too_long = false;
  int64_t line_no = 0;
  while (ReadBoundedLine(in, kMaxEventJsonBytes, &line, &too_long)) {
    ++line_no;
    const absl::Time now = absl::Now();  // a line's ingest time (stdin may stream for hours)
    if (!too_long && absl::StripAsciiWhitespace(line).empty()) continue;
    ++report.lines;
    v1::Event event;
    absl::Status s = too_long ? absl::InvalidArgumentError(absl::StrCat(
                                    "longer than ", kMaxEventJsonBytes,
                                    " bytes; an event's JSON is at most that"))
                              : ParseEventJson(line, &event);
    if (s.ok()) {
      if (!event.has_recorded_at()) {
        *event.mutable_recorded_at() = ToProtoTime(now);
      } else if (!options.historical) {
        // Ingest time is ours to set: a caller's recorded_at could move the partition clock.
        *event.mutable_recorded_at() = ToProtoTime(now);
        ++report.restamped;
      } else if (FromProtoTime(event.recorded_at()) > now + options.max_ahead) {
        s = absl::InvalidArgumentError(absl::StrCat(
            "recorded_at: ",
            absl::FormatTime(absl::RFC3339_full, FromProtoTime(event.recorded_at()),
                             absl::UTCTimeZone()),
            " is in the future; a historical import holds past events only"));
      }
      if (s.ok()) s = ValidateEvent(event);
    }
    if (!s.ok()) {
      ++report.bad;
      // One line per bad input line, whatever the parser quoted of it (control bytes, its own
      // caret snippet over several lines): escaped and bounded.
      errors << "line " << line_no << ": " << Bounded(Printable(s.message()), 1024) << "\n";
      continue;
    }
    TEND_RETURN_IF_ERROR(ProduceEvent(producer, topic, event, [acked](const Delivery& d) {
      if (d.status.ok()) acked->fetch_add(1);
    }));
  }
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(60)));
  report.produced = acked->load();
  if (report.produced != report.lines - report.bad) {
    return absl::UnavailableError(absl::StrCat(report.lines - report.bad - report.produced,
                                               " records were not acknowledged by the broker"));
  }
  return report;
}

absl::StatusOr<DumpReport> DumpPatients(const DumpOptions& options, std::ostream& out,
                                        std::ostream& progress) {
  const bool csv = options.format == DumpOptions::Format::kCsv;
  if (csv && options.raw_state) {
    return absl::InvalidArgumentError("--state is JSON only: CSV columns are the view's");
  }
  const bool remote = !options.remote.target.empty();
  if (remote && (options.raw_state || !options.config_path.empty())) {
    return absl::InvalidArgumentError(
        "--state and --config read a state directory: with --grpc the instances view the "
        "patients with their own config, and send views only");
  }
  static const DumpColumns* const columns = new DumpColumns();
  TEND_ASSIGN_OR_RETURN(std::vector<DumpFilter> filters,
                        ParseDumpFilters(*columns, options.where));
  DumpReport report;
  JsonWriter json;
  std::string line;
  // The first failed write stops the walk: the reader of a pipe that went away (`| head`) or a
  // full disk would otherwise have every patient read for nothing.
  auto write_failed = [](int error) {
    if (error == EPIPE) {
      return absl::CancelledError(
          "the dump's reader closed its end of the pipe (as `| head` does); the dump stopped "
          "there");
    }
    return absl::UnavailableError(absl::StrCat(
        "writing the dump failed: ", error != 0 ? std::strerror(error) : "(no reason given)",
        " (disk full?)"));
  };
  if (csv) columns->WriteHeader(out);
  // One patient's view, or its state with raw_state.
  auto write = [&](const v1::PatientView& view, const v1::PatientState* state) {
    ++report.scanned;
    if (!filters.empty() && !MatchesFilters(*columns, filters, view)) return absl::OkStatus();
    if (csv) {
      columns->WriteRow(view, out);
    } else {
      if (state != nullptr) {
        TEND_RETURN_IF_ERROR(json.Write(*state, &line));
      } else {
        TEND_RETURN_IF_ERROR(json.Write(view, &line));
      }
      out << line << '\n';
    }
    if (!out) return write_failed(errno);
    ++report.patients;
    return absl::OkStatus();
  };
  if (remote) {
    std::map<int32_t, int64_t> offsets;
    TEND_RETURN_IF_ERROR(ForEachRemotePatient(
        options.remote, options.as_of,
        [&](const v1::PatientView& view) { return write(view, nullptr); }, &offsets, progress));
    for (const auto& [partition, offset] : offsets) {
      v1::PartitionCheckpoint c;
      c.set_partition(partition);
      c.set_next_offset(offset);
      report.checkpoints.push_back(std::move(c));
    }
  } else {
    // A secondary instance reads a consistent view beside a live engine (as of its open:
    // states and checkpoints alike).
    TEND_ASSIGN_OR_RETURN(ViewReader reader, OpenViewReader(options.db_dir, options.config_path,
                                                            options.as_of, "tend-dump-"));
    TEND_ASSIGN_OR_RETURN(report.checkpoints, reader.storage->LoadCheckpoints());
    TEND_RETURN_IF_ERROR(reader.storage->ForEachState([&](const v1::PatientState& state) {
      const bool need_view = !options.raw_state || !filters.empty();
      v1::PatientView view;
      if (need_view) view = projections::ComputeView(reader.config, state, reader.as_of.For(state));
      return write(view, options.raw_state ? &state : nullptr);
    }));
  }
  errno = 0;
  out.flush();
  if (!out) return write_failed(errno);
  return report;
}

std::string DumpStamp(const DumpOptions& options, const DumpReport& report) {
  std::vector<std::string> offsets;
  for (const auto& c : report.checkpoints) {
    offsets.push_back(absl::StrCat("\"", c.partition(), "\":", c.next_offset()));
  }
  std::string topic = report.checkpoints.empty() ? "" : report.checkpoints.front().topic();
  const std::string source =
      options.remote.target.empty()
          ? absl::StrCat("\"db\":\"", absl::CEscape(options.db_dir), "\"")
          : absl::StrCat("\"grpc\":\"", absl::CEscape(options.remote.target), "\"");
  return absl::StrCat(
      "{", source, ",\"topic\":\"", absl::CEscape(topic),
      "\",\"format\":\"", options.format == DumpOptions::Format::kCsv ? "csv" : "jsonl",
      "\",\"csv_columns_version\":", kCsvColumnsVersion, ",\"as_of\":",
      options.as_of ? absl::StrCat("\"", absl::FormatTime(absl::RFC3339_sec, *options.as_of,
                                                          absl::UTCTimeZone()), "\"")
                    : "\"partition clock\"",
      ",\"where\":\"", absl::CEscape(options.where), "\",\"patients\":", report.patients,
      ",\"scanned\":", report.scanned, ",\"next_offsets\":{", absl::StrJoin(offsets, ","),
      "}}");
}

absl::StatusOr<BgNbdFitReport> FitChurn(const FitChurnOptions& options, std::ostream& out,
                                        std::ostream& progress) {
  TEND_ASSIGN_OR_RETURN(ViewReader reader, OpenViewReader(options.db_dir, options.config_path,
                                                          options.as_of, "tend-fit-"));
  const projections::ProjectionConfig& config = reader.config;
  BgNbdFitReport report;
  std::vector<projections::BgNbdCustomer> customers;
  TEND_RETURN_IF_ERROR(reader.storage->ForEachState([&](const v1::PatientState& state) {
    ++report.patients;
    if (report.patients % 250'000 == 0) progress << "read " << report.patients << " patients\n";
    const absl::TimeZone tz = projections::PatientTimeZone(config, state);
    if (auto c = projections::BgNbdInputs(config, state, tz, reader.as_of.For(state))) {
      customers.push_back(*c);
    }
    return absl::OkStatus();
  }));
  report.customers = static_cast<int64_t>(customers.size());
  progress << "fitting BG/NBD to " << report.customers << " of " << report.patients
           << " patients (those with activity)\n";
  const projections::BgNbdParams start{config.bgnbd_r, config.bgnbd_alpha, config.bgnbd_a,
                                       config.bgnbd_b};
  TEND_ASSIGN_OR_RETURN(report.fit, projections::FitBgNbd(customers, start));
  report.start_log_likelihood = 0;
  for (const auto& c : customers) {
    report.start_log_likelihood += projections::BgNbdLogLikelihood(start, c.x, c.t_x, c.T);
  }
  const auto& p = report.fit.params;
  out << "# BG/NBD (Fader, Hardie & Lee 2005) fitted by maximum likelihood to "
      << report.customers << " patients with activity";
  if (options.as_of) out << ", as of " << absl::FormatTime(absl::RFC3339_sec, *options.as_of, absl::UTCTimeZone());
  else out << ", each as of its partition clock";
  out << "\n# log-likelihood " << absl::StrFormat("%.3f", report.fit.log_likelihood)
      << " (configured parameters: " << absl::StrFormat("%.3f", report.start_log_likelihood)
      << "); " << report.fit.iterations << " iterations"
      << (report.fit.converged ? ", converged" : ", NOT converged (iteration limit)") << "\n"
      << "# paste into the engine config (--config):\n"
      << "churn:\n  time_unit: " << (config.churn_unit_weeks ? "WEEK" : "DAY") << "\n"
      << absl::StrFormat("  r: %.6g\n  alpha: %.6g\n  a: %.6g\n  b: %.6g\n", p.r, p.alpha, p.a,
                         p.b)
      << "  horizon: " << config.churn_horizon << "\n";
  out.flush();
  return report;
}

}  // namespace tend
