// tend bench: how close the engine comes to bare consumption of the same topic, in one process
// and one run (a ratio, so the noise of a shared machine mostly cancels out).
//   (1) raw: a librdkafka consumer reads every partition to its end and discards the records;
//   (2) engine: decode, validate, dedupe, fold, RocksDB commit of states + offsets (WAL on).
// Both rates are measured from the first record consumed to the last one processed (the engine's
// final commit included), so group-join time is excluded from both. `folded_eps` stops the
// engine's clock when the last record is folded, before the final commit: the rate of a
// sustained stream, where the last batch's write overlaps the folding of the next (every earlier
// commit, and any wait for one, is inside both rates).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <iostream>
#include <set>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "engine/log.h"
#include "engine/status.h"
#include "engine/views.h"
#include "projections/patient.h"
#include "engine/ticker.h"
#include "services/dispatcher.h"
#include "services/query_service.h"
#include "services/server.h"
#include "services/sink_service.h"
#include "tools/commands.h"
#include "tools/temp_dir.h"

namespace tend {
namespace {

absl::StatusOr<double> RawConsumeRate(const std::string& brokers, const std::string& topic,
                                      int partitions, int64_t expected) {
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf({{"bootstrap.servers", brokers},
                                                       {"group.id", "tend-bench-raw"},
                                                       {"enable.auto.commit", "false"},
                                                       {"enable.partition.eof", "true"},
                                                       {"queued.min.messages", "200000"},
                                                       {"fetch.wait.max.ms", "100"}}));
  char err[512];
  KafkaHandle rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err)));
  if (!rk) return absl::InternalError(err);
  conf.release();
  rd_kafka_poll_set_consumer(rk.get());
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  TEND_RETURN_IF_ERROR(FromKafka(rd_kafka_assign(rk.get(), list.get()), "assigning"));
  KafkaQueue queue(rd_kafka_queue_get_consumer(rk.get()));
  std::vector<rd_kafka_message_t*> msgs(4096);
  int64_t count = 0;
  int eofs = 0;
  absl::Time first, last;
  std::vector<bool> at_end(partitions, false);
  while (eofs < partitions) {
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 1000, msgs.data(), msgs.size());
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (count++ == 0) first = absl::Now();
        last = absl::Now();
      } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && !at_end[m->partition]) {
        at_end[m->partition] = true;
        ++eofs;
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_consumer_close(rk.get());
  if (count != expected) {
    return absl::DataLossError(absl::StrCat("raw consumer read ", count, " records, expected ",
                                            expected, " (mock broker retention exceeded? use more "
                                            "--partitions)"));
  }
  return count / absl::ToDoubleSeconds(last - first);
}

}  // namespace

absl::Status RunBench(const BenchOptions& options, std::ostream& out) {
  MockBrokerOptions broker_options;
  broker_options.partitions = options.partitions;
  TEND_ASSIGN_OR_RETURN(auto broker, MockBroker::Start(broker_options));
  TEND_ASSIGN_OR_RETURN(auto producer,
                        Producer::Create({{"bootstrap.servers", broker->bootstrap()},
                                          {"linger.ms", "20"},
                                          {"batch.num.messages", "10000"}}));
  // The simulated cohort, all patients acquired on day 0, cut at --events records.
  CohortOptions cohort;
  cohort.patients = options.patients;
  cohort.days = 3650;
  cohort.seed = options.seed;
  cohort.initial_share = 1.0;
  int64_t produced = 0;
  std::cerr << "producing " << options.events << " records..." << std::endl;
  absl::Status sim = SimulateCohort(cohort, [&](const v1::Event& e) -> absl::Status {
    if (produced == options.events) return absl::CancelledError("enough");
    ++produced;
    return ProduceEvent(producer.get(), broker_options.topic, e);
  });
  if (!sim.ok() && !absl::IsCancelled(sim)) return sim;
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(300)));
  if (producer->failed() > 0) return absl::UnavailableError("some records were not acknowledged");

  // Each phase runs `repeat` times, alternating, and the medians are compared: on a shared
  // 2-core machine single runs vary by +-20%.
  std::vector<double> raw_rates, engine_rates, folded_rates;
  EngineStats st;
  for (int round = 0; round < options.repeat; ++round) {
    std::cerr << "round " << round + 1 << "/" << options.repeat << ": raw consumption..."
              << std::endl;
    TEND_ASSIGN_OR_RETURN(double raw, RawConsumeRate(broker->bootstrap(), broker_options.topic,
                                                     options.partitions, produced));
    raw_rates.push_back(raw);
    std::cerr << "round " << round + 1 << "/" << options.repeat << ": engine end to end..."
              << std::endl;
    TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-bench-"));
    TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
    EngineOptions engine_options;
    engine_options.brokers = broker->bootstrap();
    engine_options.group_id = absl::StrCat("tend-bench-engine-", round);
    engine_options.exit_when_idle = true;
    engine_options.rules = options.rules;  // decisions only: no dispatcher in a benchmark
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    std::atomic<bool> stop{false};
    TEND_RETURN_IF_ERROR(engine->Run(stop));
    absl::Time done = absl::Now();
    st = engine->stats();
    if (st.records != produced) {
      return absl::DataLossError(
          absl::StrCat("engine consumed ", st.records, " records, expected ", produced));
    }
    engine_rates.push_back(st.records / absl::ToDoubleSeconds(done - st.first_record_at));
    folded_rates.push_back(st.records / absl::ToDoubleSeconds(st.last_fold_at - st.first_record_at));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const double raw_eps = median(raw_rates), engine_eps = median(engine_rates),
               folded_eps = median(folded_rates);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  out << absl::StrFormat(
             "{\"events\":%d,\"patients\":%d,\"partitions\":%d,\"repeat\":%d,"
             "\"raw_consume_eps\":%.0f,\"engine_eps\":%.0f,\"ratio\":%.3f,"
             "\"engine_eps_min\":%.0f,\"engine_eps_max\":%.0f,\"folded_eps\":%.0f,"
             "\"folded_ratio\":%.3f,\"peak_rss_mb\":%.0f,"
             "\"duplicates\":%d,\"commits\":%d,\"timers_fired\":%d,\"decisions\":%d,"
             "\"commands\":%d}",
             produced, options.patients, options.partitions, options.repeat, raw_eps, engine_eps,
             engine_eps / raw_eps, *std::min_element(engine_rates.begin(), engine_rates.end()),
             *std::max_element(engine_rates.begin(), engine_rates.end()), folded_eps,
             folded_eps / raw_eps, ru.ru_maxrss / 1024.0,
             st.duplicates, st.commits, st.timers_fired, st.decisions, st.commands)
      << std::endl;
  return absl::OkStatus();
}

}  // namespace tend

// ---- tend bench --latency ----------------------------------------------------------------
// Event-to-command latency, live: a paced producer writes events recorded "now"; the engine
// folds and decides them; the dispatcher delivers the commands over gRPC to the reference sink.
// For each command triggered by an event, latency = the sink's acceptance time - the time the
// event was handed to the producer (both on this machine's clock). Quiet hours are off so no
// command is deferred on purpose.

namespace tend {
namespace {

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

absl::Status RunLatencyBench(const LatencyBenchOptions& options, std::ostream& out) {
  if (options.rules == nullptr) return absl::InvalidArgumentError("--latency needs --rules");
  if (options.rate <= 0 || options.new_every < 1 || options.patients < 1) {
    return absl::InvalidArgumentError("--rate, --patients must be > 0");
  }
  MockBrokerOptions broker_options;
  broker_options.partitions = options.partitions;
  TEND_ASSIGN_OR_RETURN(auto broker, MockBroker::Start(broker_options));
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create({{"bootstrap.servers", broker->bootstrap()},
                                                         {"linger.ms", "1"}}));
  TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-latency-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));

  // The sink notes when each command arrives.
  absl::Mutex mu;
  std::vector<std::pair<std::string, absl::Time>> arrivals;  // trigger event id, accepted at
  TEND_ASSIGN_OR_RETURN(auto sink, SinkService::Create(""));
  sink->set_on_accept([&](const v1::ReminderCommand& c, absl::Time at) {
    if (c.trigger_event_id().empty()) return;
    absl::MutexLock lock(&mu);
    arrivals.emplace_back(c.trigger_event_id(), at);
  });
  TEND_ASSIGN_OR_RETURN(RunningServer server, StartGrpcServer("127.0.0.1:0", {sink.get()}));
  DispatcherOptions dispatch;
  dispatch.sink.target = absl::StrCat("127.0.0.1:", server.port);
  TEND_ASSIGN_OR_RETURN(auto dispatcher, Dispatcher::Start(dispatch, storage.get()));

  EngineOptions engine_options;
  engine_options.brokers = broker->bootstrap();
  engine_options.group_id = "tend-latency";
  engine_options.rules = options.rules;
  engine_options.policy.quiet_start_minute = engine_options.policy.quiet_end_minute = 0;
  engine_options.commit_interval = options.commit_interval;
  // Measured here: with the engine's fetch.wait.max.ms of 100 ms, the mock broker adds ~50-100 ms
  // to every record at low rates (an empty fetch is held for the whole wait; a real broker
  // answers once fetch.min.bytes are there). Keep it short for this measurement.
  engine_options.kafka = {{"fetch.wait.max.ms", "5"}};
  engine_options.kafka.insert(engine_options.kafka.end(), options.kafka.begin(),
                              options.kafka.end());
  TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
  std::atomic<bool> stop{false};
  absl::Status engine_status;
  std::thread engine_thread([&] { engine_status = engine->Run(stop); });

  // Paced production: event i is due at start + i / rate.
  const int64_t total = static_cast<int64_t>(options.rate * absl::ToDoubleSeconds(options.duration));
  std::vector<absl::Time> sent_at(static_cast<size_t>(total));
  std::cerr << "producing " << total << " events at " << options.rate << "/s for "
            << absl::FormatDuration(options.duration) << "..." << std::endl;
  // Warm-up: one record per partition, measured from once the engine has read them all (it has
  // joined the group and been assigned every partition).
  for (int p = 0; p < options.partitions; ++p) {
    const v1::Event tick = MakeClockTick("latency-warm-up", absl::Now());
    TEND_RETURN_IF_ERROR(producer->Produce(broker_options.topic, p, "", tick.SerializeAsString(),
                                           {}, nullptr));
  }
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(30)));
  const absl::Time warm_deadline = absl::Now() + absl::Seconds(60);
  while (engine->stats().records < options.partitions && absl::Now() < warm_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (engine->stats().records < options.partitions) {
    stop = true;
    engine_thread.join();
    return absl::DeadlineExceededError("the engine did not start consuming within 60 s");
  }
  const absl::Time start = absl::Now();
  int64_t late_sends = 0;
  for (int64_t i = 0; i < total; ++i) {
    const absl::Time due = start + absl::Seconds(static_cast<double>(i) / options.rate);
    absl::Time now = absl::Now();
    if (now < due) {
      absl::SleepFor(due - now);
      now = absl::Now();
    } else if (now - due > absl::Milliseconds(10)) {
      ++late_sends;
    }
    v1::Event e;
    e.set_event_id(absl::StrCat("e", i));
    const int64_t new_patients = i / options.new_every;
    if (i % options.new_every == 0) {  // a new patient scans in: the welcome rule fires
      e.set_patient_id(absl::StrCat("p", new_patients % options.patients));
      e.mutable_scan()->set_channel_id("pharmacy");
      e.mutable_scan()->set_staff_id("staff-1");
    } else {  // an earlier patient checks in
      e.set_patient_id(absl::StrCat("p", (i * 7919) % std::max<int64_t>(1, new_patients)));
      e.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
      e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(5.5 + static_cast<double>(i % 9));
    }
    const int64_t ns = absl::ToUnixNanos(now);
    e.mutable_occurred_at()->set_seconds(ns / 1000000000);
    e.mutable_occurred_at()->set_nanos(static_cast<int32_t>(ns % 1000000000));
    *e.mutable_recorded_at() = e.occurred_at();
    sent_at[static_cast<size_t>(i)] = now;
    TEND_RETURN_IF_ERROR(ProduceEvent(producer.get(), broker_options.topic, e));
  }
  const absl::Duration produce_time = absl::Now() - start;
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(60)));
  // Let the last commands arrive.
  const absl::Time drain_until = absl::Now() + absl::Seconds(10);
  int64_t last_count = -1;
  while (absl::Now() < drain_until) {
    absl::SleepFor(absl::Milliseconds(500));
    absl::MutexLock lock(&mu);
    if (static_cast<int64_t>(arrivals.size()) == last_count) break;
    last_count = static_cast<int64_t>(arrivals.size());
  }
  stop = true;
  engine_thread.join();
  dispatcher.reset();
  server.server->Shutdown();
  TEND_RETURN_IF_ERROR(engine_status);

  std::vector<double> latencies_ms;
  {
    absl::MutexLock lock(&mu);
    for (const auto& [event_id, at] : arrivals) {
      int64_t i = 0;
      if (event_id.size() < 2 || !absl::SimpleAtoi(absl::string_view(event_id).substr(1), &i) ||
          i < 0 || i >= total) {
        continue;
      }
      latencies_ms.push_back(absl::ToDoubleMilliseconds(at - sent_at[static_cast<size_t>(i)]));
    }
  }
  const EngineStats st = engine->stats();
  out << absl::StrFormat(
             "{\"rate_target\":%.0f,\"rate_achieved\":%.0f,\"events\":%d,\"late_sends\":%d,"
             "\"engine_records\":%d,\"commands_at_sink\":%d,\"latency_ms_p50\":%.1f,"
             "\"latency_ms_p90\":%.1f,\"latency_ms_p99\":%.1f,\"latency_ms_max\":%.1f}",
             options.rate, static_cast<double>(total) / absl::ToDoubleSeconds(produce_time),
             total, late_sends, st.records - options.partitions, latencies_ms.size(), Percentile(latencies_ms, 0.5),
             Percentile(latencies_ms, 0.9), Percentile(latencies_ms, 0.99),
             Percentile(latencies_ms, 1.0))
      << std::endl;
  return absl::OkStatus();
}

namespace {

// Simulated records, partitioned by a hash of the patient, as an engine record source.
class MemorySource : public RecordSource {
 public:
  MemorySource(std::vector<std::pair<int32_t, std::string>> records,
               std::vector<std::string> keys)
      : records_(std::move(records)), keys_(std::move(keys)) {}
  absl::StatusOr<bool> Next(LogRecord* r) override {
    if (next_ == records_.size()) return false;
    r->partition = records_[next_].first;
    r->offset = offsets_[r->partition]++;
    r->key = keys_[next_];
    r->value = records_[next_].second;
    ++next_;
    return true;
  }

 private:
  std::vector<std::pair<int32_t, std::string>> records_;
  std::vector<std::string> keys_;
  std::map<int32_t, int64_t> offsets_;
  size_t next_ = 0;
};

}  // namespace

// ListPatients paged through to the end (page_size 500, one client) for a few filters, against
// the walk the indexes replace: every patient read and viewed (one pass for all filters).
absl::Status BenchListPatients(const Storage& storage, const projections::ProjectionConfig& config,
                               int port, std::ostream& out) {
  struct Filter {
    std::string name;
    v1::ListPatientsRequest request;
  };
  std::vector<Filter> filters(6);
  filters[0].name = "stage=silent";
  filters[0].request.set_stage(v1::ChurnView::SILENT);
  filters[1].name = "risk>=0.5";
  filters[1].request.set_min_churn_risk(0.5);
  filters[2].name = "risk>=0.9";
  filters[2].request.set_min_churn_risk(0.9);
  filters[3].name = "activated=false";
  filters[3].request.set_activated(false);
  filters[4].name = "stage=active,risk>=0.7";
  filters[4].request.set_stage(v1::ChurnView::ACTIVE);
  filters[4].request.set_min_churn_risk(0.7);
  filters[5].name = "(none)";

  // The walk: every state, its view at its partition's clock, every filter.
  std::vector<int64_t> walked(filters.size());
  TEND_ASSIGN_OR_RETURN(AsOfResolver resolver, AsOfResolver::Load(storage, std::nullopt));
  const absl::Time walk_start = absl::Now();
  TEND_RETURN_IF_ERROR(storage.ForEachState([&](const v1::PatientState& state) {
    const v1::PatientView v = projections::ComputeView(config, state, resolver.For(state));
    for (size_t i = 0; i < filters.size(); ++i) {
      walked[i] += MatchesListFilters(filters[i].request, v);
    }
    return absl::OkStatus();
  }));
  const double walk_seconds = absl::ToDoubleSeconds(absl::Now() - walk_start);

  auto stub = v1::Query::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                     grpc::InsecureChannelCredentials()));
  for (size_t i = 0; i < filters.size(); ++i) {
    v1::ListPatientsRequest request = filters[i].request;
    request.set_page_size(500);
    int64_t matches = 0, pages = 0, examined = 0;
    std::set<std::string> indexes;
    const absl::Time start = absl::Now();
    for (;;) {
      grpc::ClientContext ctx;
      v1::ListPatientsResponse response;
      grpc::Status s = stub->ListPatients(&ctx, request, &response);
      if (!s.ok()) return absl::InternalError(absl::StrCat("ListPatients: ", s.error_message()));
      ++pages;
      matches += response.patients_size();
      for (const auto& [key, value] : ctx.GetServerTrailingMetadata()) {
        if (key == "tend-candidates-examined") {
          examined += std::stoll(std::string(value.data(), value.size()));
        } else if (key == "tend-index") {
          indexes.insert(std::string(value.data(), value.size()));
        }
      }
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (matches != walked[i]) {
      return absl::InternalError(absl::StrCat("ListPatients ", filters[i].name, " returned ",
                                              matches, " patients, the walk found ", walked[i]));
    }
    out << absl::StrFormat(
               "{\"list\":\"%s\",\"index\":\"%s\",\"matches\":%d,\"examined\":%d,\"pages\":%d,"
               "\"seconds\":%.3f,\"walk_all_seconds\":%.3f,\"speedup\":%.1f}",
               filters[i].name, absl::StrJoin(indexes, ","), matches, examined, pages, seconds,
               walk_seconds, seconds > 0 ? walk_seconds / seconds : 0)
        << std::endl;
  }
  return absl::OkStatus();
}

absl::Status RunQueryBench(const QueryBenchOptions& options, std::ostream& out) {
  constexpr int kPartitions = 8;
  CohortOptions cohort;
  cohort.patients = options.patients;
  cohort.days = options.days > 0 ? options.days : 3650;
  cohort.seed = options.seed;
  cohort.initial_share = options.days > 0 ? cohort.initial_share : 1.0;
  std::vector<std::pair<int32_t, std::string>> records;
  std::vector<std::string> keys;
  std::vector<std::string> patients;
  absl::flat_hash_set<std::string> seen;
  absl::Status sim = SimulateCohort(cohort, [&](const v1::Event& e) -> absl::Status {
    if (options.days == 0 && static_cast<int64_t>(records.size()) == options.events) {
      return absl::CancelledError("enough");
    }
    const int32_t partition =
        static_cast<int32_t>(std::hash<std::string>()(e.patient_id()) % kPartitions);
    records.emplace_back(partition, e.SerializeAsString());
    keys.push_back(e.patient_id());
    if (seen.insert(e.patient_id()).second) patients.push_back(e.patient_id());
    return absl::OkStatus();
  });
  if (!sim.ok() && !absl::IsCancelled(sim)) return sim;
  std::cerr << "folding " << records.size() << " records of " << patients.size()
            << " patients..." << std::endl;
  TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-bench-query-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
  {
    EngineOptions engine_options;
    engine_options.mode = EngineOptions::Mode::kReplay;
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    MemorySource source(std::move(records), std::move(keys));
    std::atomic<bool> stop{false};
    TEND_RETURN_IF_ERROR(engine->RunFrom(&source, stop));
  }
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();

  // Baseline: the same lookup and view in process, one thread.
  std::mt19937_64 rng(options.seed);
  int64_t direct = 0;
  int64_t viewed = 0;  // used below, so the views are really computed
  const absl::Time direct_end = absl::Now() + absl::Seconds(2);
  while (absl::Now() < direct_end) {
    const std::string& id = patients[rng() % patients.size()];
    TEND_ASSIGN_OR_RETURN(auto state, storage->FindPatient(id));
    if (!state) return absl::InternalError(absl::StrCat("patient ", id, " not found"));
    TEND_ASSIGN_OR_RETURN(absl::Time as_of, DefaultAsOf(*storage, *state));
    viewed += projections::ComputeView(config, *state, as_of).unique_events();
    ++direct;
  }
  const double direct_qps = direct / 2.0;
  if (viewed <= 0) return absl::InternalError("the folded patients have no events");

  QueryService query(storage.get(), config);
  TEND_ASSIGN_OR_RETURN(RunningServer server, StartGrpcServer("127.0.0.1:0", {&query}));
  std::cerr << "GetPatient: " << options.clients << " clients for "
            << absl::FormatDuration(options.duration) << " on port " << server.port << std::endl;
  std::vector<std::vector<double>> latencies(static_cast<size_t>(options.clients));
  std::atomic<int64_t> errors{0};
  const absl::Time end = absl::Now() + options.duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < options.clients; ++c) {
    clients.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
      auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server.port),
                                               grpc::InsecureChannelCredentials(), args);
      auto stub = v1::Query::NewStub(channel);
      std::mt19937_64 local(options.seed + static_cast<uint64_t>(c) + 1);
      auto& mine = latencies[static_cast<size_t>(c)];
      while (absl::Now() < end) {
        v1::GetPatientRequest req;
        req.set_patient_id(patients[local() % patients.size()]);
        v1::GetPatientResponse resp;
        grpc::ClientContext ctx;
        const absl::Time t0 = absl::Now();
        grpc::Status s = stub->GetPatient(&ctx, req, &resp);
        mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
        if (!s.ok()) errors.fetch_add(1);
      }
    });
  }
  for (auto& t : clients) t.join();
  TEND_RETURN_IF_ERROR(BenchListPatients(*storage, config, server.port, out));
  server.server->Shutdown();
  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  const double seconds = absl::ToDoubleSeconds(options.duration);
  const double qps = all.size() / seconds;
  out << absl::StrFormat(
             "{\"patients\":%d,\"clients\":%d,\"seconds\":%.0f,\"requests\":%d,"
             "\"errors\":%d,\"grpc_qps\":%.0f,\"direct_qps_1_thread\":%.0f,\"ratio\":%.3f,"
             "\"latency_ms_p50\":%.2f,\"latency_ms_p99\":%.2f,\"latency_ms_max\":%.2f}",
             patients.size(), options.clients, seconds, all.size(), errors.load(), qps,
             direct_qps, direct_qps > 0 ? qps / direct_qps : 0, Percentile(all, 0.5),
             Percentile(all, 0.99), all.empty() ? 0 : *std::max_element(all.begin(), all.end()))
      << std::endl;
  return errors.load() == 0 ? absl::OkStatus()
                            : absl::InternalError("some GetPatient calls failed");
}

}  // namespace tend

// ---- tend bench --dispatch ---------------------------------------------------------------
// Outbox to sink. (1) Throughput: `commands` commands due now, in 32 partitions, delivered over
// gRPC (loopback) to the reference sink behind a fixed delay that stands for a remote gateway's
// response time; the dispatcher with one delivery in flight (the baseline of the ratio) against
// `in_flight`, alternating, medians. (2) Waiting: `deferred` commands due tomorrow (the end of
// quiet hours) in the outbox and the dispatcher idle for 3 s: the process's CPU time and the
// commands it read, against one full read of the outbox (what a dispatcher that rescans would
// pay on every pass).

namespace tend {
namespace {

// The reference sink, answering after `delay`.
class DelayedSink final : public v1::ReminderSink::Service {
 public:
  DelayedSink(SinkService* sink, absl::Duration delay) : sink_(sink), delay_(delay) {}
  grpc::Status Deliver(grpc::ServerContext* context, const v1::DeliverRequest* request,
                       v1::DeliverResponse* response) override {
    absl::SleepFor(delay_);
    return sink_->Deliver(context, request, response);
  }

 private:
  SinkService* const sink_;
  const absl::Duration delay_;
};

absl::Status FillOutbox(Storage* storage, absl::string_view prefix, int64_t n,
                        int64_t not_before_s) {
  StateBatch batch = storage->NewBatch();
  for (int64_t i = 0; i < n; ++i) {
    v1::ReminderCommand c;
    c.set_command_id(absl::StrCat(prefix, i));
    c.set_patient_id(absl::StrCat("p-", i % 100'000));
    c.set_rule_id("daily-checkin");
    c.set_rule_version(1);
    c.set_template_id("checkin-reminder");
    c.set_channel(v1::CHAT);
    c.set_automated(true);
    (*c.mutable_parameters())["name"] = "patient";
    c.mutable_not_before()->set_seconds(not_before_s);
    c.mutable_expires_at()->set_seconds(not_before_s + 2 * 86400);
    batch.PutCommand(static_cast<int32_t>(i % 32), c);
    if (batch.Count() >= 10'000 || i + 1 == n) {
      TEND_RETURN_IF_ERROR(storage->Commit(&batch));
      batch.Clear();
    }
  }
  return absl::OkStatus();
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

absl::Status RunDispatchBench(const DispatchBenchOptions& options, std::ostream& out) {
  if (options.commands < 1 || options.in_flight < 1 || options.deferred < 0) {
    return absl::InvalidArgumentError("--commands and --in-flight must be >= 1");
  }
  TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-dispatch-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
  TEND_ASSIGN_OR_RETURN(auto sink, SinkService::Create(""));
  DelayedSink delayed(sink.get(), options.sink_delay);
  TEND_ASSIGN_OR_RETURN(RunningServer server, StartGrpcServer("127.0.0.1:0", {&delayed}));
  DispatcherOptions dispatch;
  dispatch.sink.target = absl::StrCat("127.0.0.1:", server.port);

  // One phase: fill the outbox, start a dispatcher, time until the sink has every command.
  int phase = 0;
  auto deliver_all = [&](int in_flight) -> absl::StatusOr<double> {
    const int64_t before = sink->accepted();
    TEND_RETURN_IF_ERROR(FillOutbox(storage.get(), absl::StrCat("c", phase++, "-"),
                                    options.commands, absl::ToUnixSeconds(absl::Now()) - 1));
    dispatch.max_in_flight = in_flight;
    const absl::Time start = absl::Now();
    TEND_ASSIGN_OR_RETURN(auto dispatcher, Dispatcher::Start(dispatch, storage.get()));
    while (sink->accepted() < before + options.commands) {
      if (absl::Now() - start > absl::Minutes(10)) {
        return absl::DeadlineExceededError("the sink did not get every command in 10 minutes");
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    TEND_LOG_INFO("dispatch bench: %d commands, %d in flight: %.0f commands/s", options.commands,
                  in_flight, static_cast<double>(options.commands) / seconds);
    return static_cast<double>(options.commands) / seconds;
  };
  std::vector<double> serial, concurrent;
  for (int r = 0; r < options.repeat; ++r) {
    TEND_ASSIGN_OR_RETURN(double s, deliver_all(1));
    serial.push_back(s);
    TEND_ASSIGN_OR_RETURN(double c, deliver_all(options.in_flight));
    concurrent.push_back(c);
  }
  TEND_ASSIGN_OR_RETURN(const int64_t left, storage->CountCommands());

  // Waiting with a deferred backlog.
  TEND_RETURN_IF_ERROR(FillOutbox(storage.get(), "deferred-", options.deferred,
                                  absl::ToUnixSeconds(absl::Now()) + 86400));
  const absl::Time scan_start = absl::Now();
  TEND_ASSIGN_OR_RETURN(const int64_t scanned, storage->CountCommands());
  const double full_read_ms = absl::ToDoubleMilliseconds(absl::Now() - scan_start);
  dispatch.max_in_flight = options.in_flight;
  TEND_ASSIGN_OR_RETURN(auto idle, Dispatcher::Start(dispatch, storage.get()));
  absl::SleepFor(absl::Milliseconds(200));
  const double cpu0 = CpuSeconds();
  absl::SleepFor(absl::Seconds(3));
  const double idle_cpu_ms_per_s = (CpuSeconds() - cpu0) * 1000 / 3;
  const int64_t idle_reads = idle->stats().read;
  idle.reset();
  server.server->Shutdown();

  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  out << absl::StrFormat(
             "{\"commands\":%d,\"sink_delay_ms\":%.1f,\"in_flight\":%d,\"repeat\":%d,"
             "\"serial_cps\":%.0f,\"concurrent_cps\":%.0f,\"ratio\":%.2f,\"duplicates_at_sink\":%d,"
             "\"left_in_outbox\":%d,\"deferred\":%d,\"outbox_full_read_ms\":%.1f,"
             "\"idle_cpu_ms_per_s\":%.1f,\"idle_commands_read\":%d}",
             options.commands, absl::ToDoubleMilliseconds(options.sink_delay), options.in_flight,
             options.repeat, median(serial), median(concurrent),
             median(concurrent) / median(serial), sink->duplicates(), left, scanned, full_read_ms,
             idle_cpu_ms_per_s, idle_reads)
      << std::endl;
  return absl::OkStatus();
}

}  // namespace tend
