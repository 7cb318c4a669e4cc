#include "dev/demo.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <map>
#include <thread>

#include "auth/auth.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/views.h"
#include "projections/patient.h"
#include "rules/rules.h"
#include "dispatch/dispatcher.h"
#include "services/ingest_service.h"
#include "services/query_service.h"
#include "observe/metrics.h"
#include "services/grpc_metrics.h"
#include "services/server.h"
#include "services/sink_service.h"
#include "tend/v1/services.grpc.pb.h"
#include "dev/mock_broker.h"
#include "dev/produce_cohort.h"
#include "engine/engine.h"
#include "kafka/kafka.h"
#include "storage/storage.h"
#include "base/temp_dir.h"

namespace tend {
namespace {

// Three kinds of bad input the engine must survive: not an Event at all, a device clock in the
// future, and a record keyed by someone else than its patient.
absl::Status ProduceMalformed(Producer* producer, const std::string& topic) {
  TEND_RETURN_IF_ERROR(
      producer->Produce(topic, RD_KAFKA_PARTITION_UA, "p-garbage", "\xff\xfenot-protobuf", {}, {}));
  v1::Event future;
  future.set_event_id("demo-bad-clock");
  future.set_patient_id("p0000001");
  future.mutable_recorded_at()->set_seconds(1767225600);
  future.mutable_occurred_at()->set_seconds(1767225600 + 5LL * 365 * 86400);  // a phone in 2031
  future.mutable_check_in()->set_kind(v1::CheckIn::DIET);
  TEND_RETURN_IF_ERROR(ProduceEvent(producer, topic, future));
  v1::Event wrong_key = future;
  wrong_key.set_event_id("demo-wrong-key");
  *wrong_key.mutable_occurred_at() = wrong_key.recorded_at();
  std::string value = wrong_key.SerializeAsString();
  auto headers = EventHeaders(wrong_key);
  return producer->Produce(topic, RD_KAFKA_PARTITION_UA, "p0000002", value, headers, {});
}

}  // namespace

absl::Status RunDemo(const DemoOptions& options, const std::atomic<bool>& stop, std::ostream& out) {
  MockBrokerOptions broker_options;
  broker_options.partitions = options.partitions;
  TEND_ASSIGN_OR_RETURN(auto broker, MockBroker::Start(broker_options));
  TEND_ASSIGN_OR_RETURN(auto producer,
                        Producer::Create({{"bootstrap.servers", broker->bootstrap()}}));

  std::shared_ptr<const RuleSet> rules;
  if (!options.rules_path.empty()) {
    TEND_ASSIGN_OR_RETURN(RuleSet loaded, RuleSet::Load(options.rules_path));
    rules = std::make_shared<const RuleSet>(std::move(loaded));
  }
  CohortOptions cohort;
  cohort.patients = options.patients;
  cohort.days = options.days;
  cohort.seed = options.seed;
  // With rules, the simulated history ends now, so the latest reminders are still live when the
  // dispatcher sees them (older ones have expired: a LIVE dispatcher never sends stale ones).
  if (rules) cohort.end = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) / 60 * 60);
  out << absl::StrFormat("simulating %d patients over %d days...\n", cohort.patients, cohort.days)
      << std::flush;
  TEND_ASSIGN_OR_RETURN(int64_t produced,
                        SimulateToKafka(cohort, producer.get(), broker_options.topic));
  TEND_RETURN_IF_ERROR(ProduceMalformed(producer.get(), broker_options.topic));
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(30)));
  produced += 3;

  TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-demo-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
  EngineOptions engine_options;
  engine_options.brokers = broker->bootstrap();
  engine_options.exit_when_idle = !options.serve;
  engine_options.rules = rules;
  TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
  IngestService ingest(producer.get(), engine_options.topic);
  QueryService query(storage.get(), engine_options.projections);
  TEND_ASSIGN_OR_RETURN(auto sink, SinkService::Create(""));
  // Synthetic data, but the same rule as the engine: plaintext without tokens on loopback only.
  TEND_ASSIGN_OR_RETURN(ServerAuth auth, MakeServerAuth(ServerSecurity(), options.grpc_listen));
  // Reflection on, for grpcurl: the demo is for exploring.
  GrpcMetrics grpc_metrics({v1::Ingest::service_full_name(), v1::Query::service_full_name(),
                            v1::ReminderSink::service_full_name()});
  ServerOptions server_options;
  server_options.credentials = auth.credentials;
  server_options.reflection = true;
  server_options.metrics = &grpc_metrics;
  TEND_ASSIGN_OR_RETURN(RunningServer server,
                        StartGrpcServer(options.grpc_listen, {&ingest, &query, sink.get()},
                                        server_options));
  server.SetServing(true);  // synthetic data: nothing to wait for
  // Each source leaves the metrics before it goes (its registration is destroyed first).
  auto collector = std::make_shared<MetricsCollector>();
  const auto storage_metrics = collector->AddStorage(storage.get());
  const auto engine_metrics = collector->AddEngine(engine.get(), engine_options.cache_max_bytes);
  const auto grpc_registration = collector->AddGrpc(&grpc_metrics);
  const auto sink_metrics = collector->AddSink(sink.get());
  std::unique_ptr<MetricsEndpoint> metrics;
  if (!options.metrics_listen.empty()) {
    TEND_ASSIGN_OR_RETURN(metrics, MetricsEndpoint::Start(options.metrics_listen, collector));
    out << absl::StrFormat("metrics: http://127.0.0.1:%d/metrics\n", metrics->port());
  }
  std::unique_ptr<Dispatcher> dispatcher;
  MetricsCollector::Registration dispatcher_metrics;
  if (rules) {
    DispatcherOptions d;
    d.sink.target = absl::StrCat("127.0.0.1:", server.port);
    d.owns = [e = engine.get()](int32_t partition) { return e->Owns(partition); };
    TEND_ASSIGN_OR_RETURN(dispatcher, Dispatcher::Start(d, storage.get()));
    dispatcher_metrics = collector->AddDispatcher(dispatcher.get());
    out << absl::StrFormat("rules: %d from %s; reminders go to the reference sink (tend.v1."
                           "ReminderSink on the same port)\n",
                           rules->rules().size(), options.rules_path);
  }
  out << absl::StrFormat("broker %s, gRPC on 127.0.0.1:%d, state in %s; folding %d records...\n",
                         broker->bootstrap(), server.port, db_dir.path(), produced)
      << std::flush;
  if (options.serve) {
    out << absl::StrFormat(
               "serving until Ctrl-C. Try:\n  grpcurl -plaintext -d '{\"patient_id\":\"p0000001\"}' "
               "127.0.0.1:%d tend.v1.Query/GetPatient\n",
               server.port)
        << std::flush;
  }
  absl::Status run = engine->Run(stop);
  absl::Time done = absl::Now();
  EngineStats st = engine->stats();
  TEND_RETURN_IF_ERROR(run);

  // Read one patient back through the real gRPC path, as a backend service would.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Query::NewStub(channel);
  grpc::ClientContext ctx;
  v1::GetPatientRequest req;
  req.set_patient_id("p0000001");
  v1::GetPatientResponse resp;
  grpc::Status gs = stub->GetPatient(&ctx, req, &resp);
  // Let the dispatcher work through the outbox: deliver what is live, drop (and record) what
  // expired while the history was being folded.
  DispatcherStats ds;
  if (dispatcher) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    int64_t outbox = -1;
    while (outbox != 0 && absl::Now() < deadline) {
      outbox = 0;
      TEND_RETURN_IF_ERROR(storage->ForEachCommand([&](int32_t, const v1::ReminderCommand& c) {
        // Deferred past quiet hours, or not yet due: not waited for.
        if (c.not_before().seconds() <= absl::ToUnixSeconds(absl::Now())) ++outbox;
        return absl::OkStatus();
      }));
      if (outbox != 0) absl::SleepFor(absl::Milliseconds(100));
    }
    ds = dispatcher->stats();
    dispatcher_metrics = {};
    dispatcher.reset();
  }
  server.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));

  // A small cohort summary from the projections, each patient at its partition clock.
  int64_t patients = 0, activated = 0, converted = 0, repurchased = 0, with_fills = 0,
          pdc_adherent = 0;
  double weekly_rate_sum = 0;
  std::map<std::string, int64_t> stages;
  TEND_RETURN_IF_ERROR(storage->ForEachState([&](const v1::PatientState& state) {
    TEND_ASSIGN_OR_RETURN(absl::Time as_of, DefaultAsOf(*storage, state));
    const v1::PatientView v = projections::ComputeView(engine_options.projections, state, as_of);
    ++patients;
    activated += v.activation().activated();
    converted += v.conversion().converted();
    repurchased += v.conversion().repurchased();
    weekly_rate_sum += v.adherence().weekly_rate();
    if (v.adherence().pdc_days_in_period() > 0) {
      ++with_fills;
      pdc_adherent += v.adherence().pdc_adherent();
    }
    ++stages[v1::ChurnView::Stage_Name(v.churn().stage())];
    return absl::OkStatus();
  }));
  out << absl::StrFormat(
      "records %d | events applied %d | duplicates dropped %d | dead-lettered %d | patients %d",
      st.records, st.events_applied, st.duplicates, st.dead_lettered, patients);
  if (!options.serve) {  // served time is not folding time
    double secs = absl::ToDoubleSeconds(done - st.first_record_at);
    out << absl::StrFormat(" | %.0f events/s (%.2f s, %d commits)", secs > 0 ? st.records / secs : 0.0,
                           secs, st.commits);
  }
  out << "\n";
  if (patients > 0) {
    auto pct = [&](int64_t n, int64_t of) { return of > 0 ? 100.0 * n / of : 0.0; };
    out << absl::StrFormat(
        "cohort: activated %.0f%% | mean weekly check-in rate %.2f | converted %.0f%% | "
        "repurchased %.0f%% of buyers | PDC >= 0.80 %.0f%% of %d with fills\nstages:",
        pct(activated, patients), weekly_rate_sum / patients, pct(converted, patients),
        pct(repurchased, converted), pct(pdc_adherent, with_fills), with_fills);
    for (const auto& [stage, n] : stages) out << absl::StrFormat(" %s %d", stage, n);
    out << "\n";
  }
  if (rules) {
    out << absl::StrFormat(
        "rules: %d timers fired, %d decisions, %d commands | at the sink: %d accepted "
        "(%d duplicates refused) | dropped undelivered: %d expired, %d rejected\n",
        st.timers_fired, st.decisions, st.commands, sink->accepted(), sink->duplicates(),
        ds.expired, ds.rejected);
    std::map<std::string, int64_t> by_rule;
    for (const auto& c : sink->commands()) ++by_rule[c.rule_id()];
    out << "delivered by rule:";
    for (const auto& [rule, n] : by_rule) out << absl::StrFormat(" %s %d", rule, n);
    out << "\n";
    TEND_ASSIGN_OR_RETURN(auto decisions, storage->RecentDecisions("p0000001", 3));
    for (const auto& d : decisions) {
      out << absl::StrFormat("explain p0000001: %s %s v%d %s%s trigger %s\n",
                             google::protobuf::util::TimeUtil::ToString(d.at()), d.rule_id(),
                             d.rule_version(), v1::Decision::Outcome_Name(d.outcome()),
                             d.reason() ? absl::StrCat(" (", v1::Decision::Reason_Name(d.reason()), ")")
                                        : "",
                             d.trigger());
    }
  }
  if (gs.ok()) {
    const v1::PatientView& v = resp.view();
    out << absl::StrFormat(
        "Query/GetPatient p0000001 as of %s: %d events, first seen %s, stage %s, P(alive) %.2f, "
        "streak %d, weekly check-in rate %.2f, PDC %.2f\n",
        google::protobuf::util::TimeUtil::ToString(v.as_of()), v.unique_events(),
        google::protobuf::util::TimeUtil::ToString(v.acquisition().first_seen_at()),
        v1::ChurnView::Stage_Name(v.churn().stage()), v.churn().p_alive(),
        v.adherence().current_streak(), v.adherence().weekly_rate(), v.adherence().pdc());
  } else {
    return absl::InternalError(absl::StrCat("GetPatient over gRPC failed: ", gs.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace tend
