// tend.v1.Ingest and tend.v1.Query over a real gRPC server on port 0, with the engine folding
// what Ingest produced to the mock cluster.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "dev/mock_broker.h"
#include "services/ingest_service.h"
#include "services/query_service.h"
#include "services/server.h"
#include "tests/testing.h"

namespace tend {
namespace {

v1::AppendRequest CheckIn(const std::string& patient, const std::string& event_id,
                          int64_t seconds_ago) {
  v1::AppendRequest req;
  v1::Event* e = req.mutable_event();
  e->set_event_id(event_id);
  e->set_patient_id(patient);
  e->mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) - seconds_ago);
  e->mutable_check_in()->set_kind(v1::CheckIn::TRAINING);
  return req;
}

TEST_CASE("Append produces to Kafka, the engine folds it, GetPatient reads it", "[integration]") {
  auto broker = testing::StartBroker(4);
  testing::TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  EngineOptions options;
  options.brokers = broker->bootstrap();
  options.commit_interval = absl::Milliseconds(20);
  auto engine = Engine::Create(options, storage->get());
  REQUIRE(engine.ok());
  std::atomic<bool> stop{false};
  // Catch2's assertions are for the test's own thread: the engine's outcome is checked after
  // the join.
  absl::Status engine_status;
  std::thread engine_thread([&] { engine_status = (*engine)->Run(stop); });

  IngestService ingest(producer->get(), options.topic);
  QueryService query(storage->get(), options.projections);
  auto server = StartGrpcServer("127.0.0.1:0", {&ingest, &query});
  REQUIRE(server.ok());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port),
                                     grpc::InsecureChannelCredentials());
  auto ingest_stub = v1::Ingest::NewStub(channel);
  auto query_stub = v1::Query::NewStub(channel);

  SECTION("invalid events are refused with the field named, nothing produced") {
    grpc::ClientContext ctx;
    v1::AppendResponse resp;
    auto req = CheckIn("bad id", "e-1", 10);
    grpc::Status s = ingest_stub->Append(&ctx, req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.error_message().rfind("event.patient_id: must be", 0) == 0);
    grpc::ClientContext ctx2;
    s = ingest_stub->Append(&ctx2, v1::AppendRequest(), &resp);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    grpc::ClientContext ctx3;
    req = CheckIn("p-1", "e-1", -3 * 3600);  // occurred three hours in the future
    s = ingest_stub->Append(&ctx3, req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.error_message().find("event.occurred_at") == 0);
  }

  SECTION("a batch: each event judged alone, the good ones appended in order and folded") {
    v1::AppendBatchRequest batch;
    const std::vector<std::pair<std::string, int>> sent = {
        {"p-7", 500}, {"bad id", 400}, {"p-7", 300}, {"p-8", -3 * 3600}, {"p-7", 100}, {"p-9", 50}};
    for (size_t i = 0; i < sent.size(); ++i) {
      *batch.add_events() =
          CheckIn(sent[i].first, absl::StrCat("b-", i), sent[i].second).event();
    }
    batch.add_events();  // an empty event: refused, naming its index
    grpc::ClientContext ctx;
    v1::AppendBatchResponse resp;
    REQUIRE(ingest_stub->AppendBatch(&ctx, batch, &resp).ok());
    REQUIRE(resp.results_size() == 7);
    CHECK(resp.results(1).code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    CHECK(resp.results(1).error().rfind("events[1].patient_id: must be", 0) == 0);
    CHECK(resp.results(3).code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    CHECK(resp.results(3).error().rfind("events[3].occurred_at", 0) == 0);
    CHECK(resp.results(6).code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    CHECK(resp.results(6).error().rfind("events[6].", 0) == 0);
    for (int i : {0, 2, 4, 5}) {
      INFO(i << ": " << resp.results(i).error());
      CHECK(resp.results(i).code() == 0);
      CHECK(resp.results(i).appended().event_id() == absl::StrCat("b-", i));
      CHECK(resp.results(i).appended().offset() >= 0);
    }
    CHECK_FALSE(resp.results(1).has_appended());
    // One patient's events in order, in one partition.
    CHECK(resp.results(0).appended().partition() == resp.results(2).appended().partition());
    CHECK(resp.results(0).appended().offset() < resp.results(2).appended().offset());
    CHECK(resp.results(2).appended().offset() < resp.results(4).appended().offset());
    // What the log holds: exactly the four good events.
    std::set<std::string> logged;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (logged.size() < 4 && absl::Now() < deadline) {
      logged.clear();
      for (const auto& r : testing::ReadTopic(broker->bootstrap(), options.topic)) {
        v1::Event e;
        REQUIRE(e.ParseFromString(r.value));
        logged.insert(e.event_id());
      }
    }
    CHECK(logged == std::set<std::string>{"b-0", "b-2", "b-4", "b-5"});

    // Too many for one call: the batch is refused whole.
    v1::AppendBatchRequest big;
    for (int i = 0; i <= IngestService::kMaxBatchEvents; ++i) {
      *big.add_events() = CheckIn("p-1", absl::StrCat("x-", i), 10).event();
    }
    grpc::ClientContext big_ctx;
    v1::AppendBatchResponse big_resp;
    const grpc::Status refused = ingest_stub->AppendBatch(&big_ctx, big, &big_resp);
    CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(refused.error_message().find("at most 1000") != std::string::npos);
    // An empty batch is an empty answer.
    grpc::ClientContext empty_ctx;
    v1::AppendBatchResponse empty;
    CHECK(ingest_stub->AppendBatch(&empty_ctx, v1::AppendBatchRequest(), &empty).ok());
    CHECK(empty.results_size() == 0);
  }

  SECTION("a batch the broker does not acknowledge in time: UNAVAILABLE per event, not a hang") {
    ingest.set_batch_wait(absl::Seconds(1));
    rd_kafka_mock_broker_set_down(broker->cluster(), 1);
    v1::AppendBatchRequest batch;
    *batch.add_events() = CheckIn("p-5", "down-1", 10).event();
    *batch.add_events() = CheckIn("bad id", "down-2", 10).event();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
    v1::AppendBatchResponse resp;
    const absl::Time start = absl::Now();
    const grpc::Status s = ingest_stub->AppendBatch(&ctx, batch, &resp);
    rd_kafka_mock_broker_set_up(broker->cluster(), 1);
    // The server answered after its wait, well before the caller's deadline.
    INFO(s.error_message());
    REQUIRE(s.ok());
    CHECK(absl::Now() - start < absl::Seconds(5));
    REQUIRE(resp.results_size() == 2);
    CHECK(resp.results(0).code() == static_cast<int>(grpc::StatusCode::UNAVAILABLE));
    CHECK(resp.results(0).error().find("send it again") != std::string::npos);
    CHECK(resp.results(1).code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    // More than gRPC's 4 MiB in one call is refused whole, before any event is read.
    v1::AppendBatchRequest big;
    for (int i = 0; i < 150; ++i) {
      *big.add_events() = CheckIn(std::string(30'000, 'x'), absl::StrCat("big-", i), 10).event();
    }
    grpc::ClientContext big_ctx;
    CHECK(ingest_stub->AppendBatch(&big_ctx, big, &resp).error_code() ==
          grpc::StatusCode::RESOURCE_EXHAUSTED);
  }

  SECTION("an Append the broker does not acknowledge: UNAVAILABLE before the caller's deadline, "
          "with the id to send it again with; sent again, the patient has the event once") {
    // The broker acknowledges the next produce request after 8 s: later than the caller waits.
    REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(broker->cluster(), 1, /*Produce=*/0, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, 8000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    grpc::ClientContext ctx;
    // The server answers 0.6 s before this deadline.
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(6));
    v1::AppendResponse resp;
    const absl::Time start = absl::Now();
    const grpc::Status s = ingest_stub->Append(&ctx, CheckIn("p-7", "", 10), &resp);
    const absl::Duration took = absl::Now() - start;
    // The server's answer, not the caller's deadline (which would read DEADLINE_EXCEEDED).
    INFO(s.error_message());
    REQUIRE(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(took < absl::Seconds(6));
    CHECK(took > absl::Seconds(5));  // it waited for the broker as long as the caller allowed
    const auto& trailers = ctx.GetServerTrailingMetadata();
    const auto it = trailers.find(IngestService::kEventIdMetadata);
    REQUIRE(it != trailers.end());
    const std::string id(it->second.data(), it->second.size());
    CHECK(id.rfind("ev-", 0) == 0);  // the server made it: the caller sent none
    CHECK(s.error_message().find(absl::StrCat("send it again with event_id \"", id, "\"")) !=
          std::string::npos);

    // Sent again with that id: appended. The first copy lands too, once the broker is back.
    grpc::ClientContext again_ctx;
    auto again = CheckIn("p-7", id, 10);
    REQUIRE(ingest_stub->Append(&again_ctx, again, &resp).ok());
    CHECK(resp.event_id() == id);
    int copies = 0;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (copies < 2 && absl::Now() < deadline) {
      copies = 0;
      for (const auto& r : testing::ReadTopic(broker->bootstrap(), options.topic)) {
        v1::Event e;
        REQUIRE(e.ParseFromString(r.value));
        copies += e.event_id() == id;
      }
    }
    REQUIRE(copies == 2);
    // Then one more event of the patient, after both copies in its partition: once it is
    // folded, so are they, and the patient has two events, not three.
    grpc::ClientContext last_ctx;
    REQUIRE(ingest_stub->Append(&last_ctx, CheckIn("p-7", "after", 5), &resp).ok());
    v1::GetPatientResponse patient;
    const absl::Time folded_by = absl::Now() + absl::Seconds(60);
    for (;;) {
      grpc::ClientContext q;
      v1::GetPatientRequest req;
      req.set_patient_id("p-7");
      const grpc::Status got = query_stub->GetPatient(&q, req, &patient);
      if (got.ok() && patient.view().events_by_type().check_in() >= 2) break;
      INFO(got.error_message() << " " << patient.view().ShortDebugString());
      REQUIRE(absl::Now() < folded_by);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(patient.view().unique_events() == 2);
    CHECK(patient.view().events_by_type().check_in() == 2);
  }

  SECTION("a batch whose caller's deadline comes before the server's wait ends: answered in "
          "time, each event with its id") {
    REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(broker->cluster(), 1, /*Produce=*/0, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, 8000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    v1::AppendBatchRequest batch;
    *batch.add_events() = CheckIn("p-8", "", 10).event();
    *batch.add_events() = CheckIn("p-8", "bd-2", 10).event();
    *batch.add_events() = CheckIn("bad id", "bd-3", 10).event();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(6));
    v1::AppendBatchResponse resp;
    const grpc::Status s = ingest_stub->AppendBatch(&ctx, batch, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());  // not DEADLINE_EXCEEDED: the per-event answers reach the caller
    REQUIRE(resp.results_size() == 3);
    const std::string made = resp.results(0).event_id();
    CHECK(made.rfind("ev-", 0) == 0);
    CHECK(resp.results(1).event_id() == "bd-2");
    for (int i : {0, 1}) {
      CHECK(resp.results(i).code() == static_cast<int>(grpc::StatusCode::UNAVAILABLE));
      CHECK(resp.results(i).error().find(absl::StrCat("send it again with event_id \"",
                                                      resp.results(i).event_id(), "\"")) !=
            std::string::npos);
      CHECK_FALSE(resp.results(i).has_appended());
    }
    CHECK(resp.results(2).code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    CHECK(resp.results(2).event_id().empty());  // refused: it never went anywhere
  }

  SECTION("calls beyond the server's threads are refused at once, not given a thread each") {
    constexpr int kThreads = 8;
    ServerOptions bounded;
    bounded.max_threads = kThreads;
    auto small = StartGrpcServer("127.0.0.1:0", {&ingest}, bounded);
    REQUIRE(small.ok());
    auto small_stub = v1::Ingest::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", small->port), grpc::InsecureChannelCredentials()));
    // The broker answers every request 6 s late: each call waits for it until shortly before
    // its deadline, holding its thread.
    REQUIRE(rd_kafka_mock_broker_set_rtt(broker->cluster(), 1, 6000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    constexpr int kCalls = 32;
    std::vector<grpc::StatusCode> codes(kCalls);
    std::vector<std::thread> callers;
    for (int i = 0; i < kCalls; ++i) {
      callers.emplace_back([&, i] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::AppendResponse resp;
        codes[i] = small_stub->Append(&ctx, CheckIn("p-9", absl::StrCat("t-", i), 10), &resp)
                       .error_code();
      });
    }
    for (auto& t : callers) t.join();
    REQUIRE(rd_kafka_mock_broker_set_rtt(broker->cluster(), 1, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
    int waited = 0, refused = 0;
    for (grpc::StatusCode c : codes) {
      // A call that held a thread: answered UNAVAILABLE, or on a loaded machine past the
      // server's margin, its own deadline.
      waited += c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED;
      refused += c == grpc::StatusCode::RESOURCE_EXHAUSTED;
    }
    INFO(waited << " waited, " << refused << " refused");
    CHECK(waited + refused == kCalls);
    CHECK(waited >= 1);
    CHECK(waited <= kThreads);
    // And it serves again once its threads are free.
    grpc::ClientContext ctx;
    v1::AppendResponse resp;
    CHECK(small_stub->Append(&ctx, CheckIn("p-9", "t-after", 10), &resp).ok());
    small->server->Shutdown();
  }

  SECTION("appended events are acknowledged with their offset and become queryable") {
    std::vector<v1::AppendResponse> acks;
    for (auto [id, ago] : std::vector<std::pair<std::string, int>>{
             {"e-1", 300}, {"e-2", 200}, {"e-2", 200}, {"", 100}}) {
      grpc::ClientContext ctx;
      v1::AppendResponse resp;
      grpc::Status s = ingest_stub->Append(&ctx, CheckIn("p-42", id, ago), &resp);
      REQUIRE(s.ok());
      CHECK(resp.offset() >= 0);
      CHECK(resp.recorded_at().seconds() > 0);
      acks.push_back(resp);
    }
    CHECK(acks[3].event_id().rfind("ev-", 0) == 0);  // assigned by the server
    for (const auto& a : acks) CHECK(a.partition() == acks[0].partition());  // keyed by patient
    CHECK(acks[1].offset() < acks[2].offset());

    // Three unique events (e-2 was sent twice); wait for the engine to commit them.
    v1::GetPatientResponse resp;
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (;;) {
      grpc::ClientContext ctx;
      v1::GetPatientRequest req;
      req.set_patient_id("p-42");
      grpc::Status s = query_stub->GetPatient(&ctx, req, &resp);
      if (s.ok() && resp.view().unique_events() == 3) break;
      REQUIRE(absl::Now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(resp.view().events_by_type().check_in() == 3);
    CHECK(resp.view().partition() == acks[0].partition());
    CHECK_FALSE(resp.has_state());  // only on request
    // The default as-of is the partition clock: the latest recorded_at folded (server time).
    int64_t latest_recorded = 0;
    for (const auto& a : acks) latest_recorded = std::max(latest_recorded, a.recorded_at().seconds());
    CHECK(resp.view().as_of().seconds() == latest_recorded);
    CHECK(resp.view().adherence().check_in_days() >= 1);
    CHECK(resp.view().churn().days_since_last_activity() == 0);

    SECTION("a caller-chosen as_of moves every time-dependent value, and the state on request") {
      grpc::ClientContext ctx;
      v1::GetPatientRequest req;
      req.set_patient_id("p-42");
      req.mutable_as_of()->set_seconds(latest_recorded + 10 * 86400);
      req.set_include_state(true);
      REQUIRE(query_stub->GetPatient(&ctx, req, &resp).ok());
      CHECK(resp.view().as_of().seconds() == latest_recorded + 10 * 86400);
      CHECK(resp.view().churn().days_since_last_activity() == 10);
      CHECK(resp.view().adherence().current_streak() == 0);  // days missed since
      CHECK(resp.state().unique_events() == 3);
    }
    SECTION("Explain answers with the decisions (none without rules); bad input names the field") {
      grpc::ClientContext ctx;
      v1::ExplainRequest req;
      req.set_patient_id("p-42");
      v1::ExplainResponse explained;
      REQUIRE(query_stub->Explain(&ctx, req, &explained).ok());
      CHECK(explained.decisions_size() == 0);
      grpc::ClientContext ctx2;
      req.set_limit(5000);
      grpc::Status s = query_stub->Explain(&ctx2, req, &explained);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(s.error_message().rfind("limit:", 0) == 0);
    }
    SECTION("CohortStats counts the patient; a bad as_of is INVALID_ARGUMENT") {
      grpc::ClientContext ctx;
      v1::CohortStatsRequest req;
      v1::CohortStatsResponse stats;
      REQUIRE(query_stub->CohortStats(&ctx, req, &stats).ok());
      CHECK(stats.stats().patients() >= 1);
      CHECK(stats.stats().funnel(0).label() == "seen");
      CHECK(stats.stats().funnel(3).count() >= 1);  // p-42 checked in
      grpc::ClientContext ctx2;
      req.mutable_as_of()->set_seconds(-99999999999999);
      grpc::Status s = query_stub->CohortStats(&ctx2, req, &stats);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(s.error_message().rfind("as_of:", 0) == 0);
    }
    SECTION("a malformed as_of is INVALID_ARGUMENT naming the field") {
      grpc::ClientContext ctx;
      v1::GetPatientRequest req;
      req.set_patient_id("p-42");
      req.mutable_as_of()->set_nanos(-1);
      grpc::Status s = query_stub->GetPatient(&ctx, req, &resp);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(s.error_message().rfind("as_of:", 0) == 0);
    }

    grpc::ClientContext ctx;
    v1::GetPatientRequest req;
    req.set_patient_id("p-unknown");
    grpc::Status s = query_stub->GetPatient(&ctx, req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
    grpc::ClientContext ctx2;
    req.set_patient_id("");
    s = query_stub->GetPatient(&ctx2, req, &resp);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }

  server->server->Shutdown();
  stop.store(true);
  engine_thread.join();
  CHECK(engine_status.ToString() == "OK");
}

}  // namespace
}  // namespace tend
