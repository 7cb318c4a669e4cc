// tend bench --latency: event-to-command latency, live: a paced producer writes events recorded "now"; the engine
// folds and decides them; the dispatcher delivers the commands over gRPC to the reference sink.
// For each command triggered by an event, latency = the sink's acceptance time - the time the
// event was handed to the producer (both on this machine's clock). Quiet hours are off so no
// command is deferred on purpose.

#include <algorithm>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "base/time.h"
#include "bench/bench.h"
#include "dev/mock_broker.h"
#include "dispatch/dispatcher.h"
#include "engine/engine.h"
#include "kafka/kafka.h"
#include "kafka/ticker.h"
#include "services/server.h"
#include "services/sink_service.h"
#include "storage/storage.h"

namespace tend {

absl::Status RunLatencyBench(const LatencyBenchOptions& options, std::ostream& out) {
  if (options.rules == nullptr) return absl::InvalidArgumentError("--latency needs --rules");
  if (!(options.rate > 0 && options.rate <= 1e7) || options.new_every < 1 ||
      options.patients < 0) {
    return absl::InvalidArgumentError("--rate must be in (0, 1e7] and --patients not negative");
  }
  const int64_t total = static_cast<int64_t>(options.rate * absl::ToDoubleSeconds(options.duration));
  const int patients =
      options.patients > 0
          ? options.patients
          : static_cast<int>(std::clamp<int64_t>(total / options.new_every + 1, 50'000,
                                                 100'000'000));
  MockBrokerOptions broker_options;
  broker_options.partitions = options.partitions;
  TEND_ASSIGN_OR_RETURN(auto broker, MockBroker::Start(broker_options));
  // The producer's own linger (kafka.cc: 5 ms, librdkafka's default since 1.5 and Kafka's
  // producer's since 4.0, KIP-1030), counted in the latency. With 1 ms each produce request
  // carried 2-3 records a partition, and the mock broker finds a fetch's offset by walking its
  // list of record batches, so at 20k events/s its thread used most of a core and the p99 grew
  // with the run (130-1,050 ms in the first 50 s of 90 s runs; docs/benchmarks.md, "Latency
  // over a longer run").
  TEND_ASSIGN_OR_RETURN(auto producer,
                        Producer::Create({{"bootstrap.servers", broker->bootstrap()}}));
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
  std::vector<absl::Time> sent_at(static_cast<size_t>(total));
  std::cerr << "producing " << total << " events at " << options.rate << "/s for "
            << absl::FormatDuration(options.duration) << "..." << std::endl;
  // Warm-up: one record per partition, measured from once the engine has read them all (it has
  // joined the group and been assigned every partition).
  for (int p = 0; p < options.partitions; ++p) {
    const v1::Event tick = MakeClockTick("tend-ticker-latency-warm-up", absl::Now());
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
      e.set_patient_id(absl::StrCat("p", new_patients % patients));
      e.mutable_scan()->set_channel_id("pharmacy");
      e.mutable_scan()->set_staff_id("staff-1");
    } else {  // an earlier patient checks in
      e.set_patient_id(absl::StrCat("p", (i * 7919) % std::max<int64_t>(1, new_patients)));
      e.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
      e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(5.5 + static_cast<double>(i % 9));
    }
    *e.mutable_occurred_at() = ToProtoTime(now);
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

}  // namespace tend
