// Query/ListPatients over real gRPC (port 0) against a state the real engine folded from a
// Kafka-protocol broker (librdkafka's mock cluster), its secondary indexes rewritten at every
// one of many small commits. Expected answers come from `tend dump --where`, which reads every
// patient without the indexes.
#include <catch2/catch.hpp>

#include <grpcpp/grpcpp.h>

#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "storage/storage.h"
#include "storage/views.h"
#include "projections/patient.h"
#include "services/query_service.h"
#include "services/server.h"
#include "tests/testing.h"
#include "tools/commands.h"

namespace tend {
namespace {

// Patient ids of `tend dump --where WHERE` (as_of: the partition clocks, or `as_of`).
std::multiset<std::string> Expected(const std::string& db, const std::string& where,
                                    std::optional<absl::Time> as_of) {
  DumpOptions dump;
  dump.db_dir = db;
  dump.where = where;
  dump.as_of = as_of;
  std::ostringstream out;
  const auto dumped = DumpPatients(dump, out, std::cerr);
  INFO(dumped.status());
  REQUIRE(dumped.ok());
  std::multiset<std::string> ids;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) {
    ids.insert(line.substr(15, line.find('"', 15) - 15));  // {"patient_id":"...
  }
  return ids;
}

// Every page of the query, page_size at a time: the patient ids in the order served.
// What serving the pages cost, from the trailing metadata.
struct Cost {
  int pages = 0;
  int64_t examined = 0;  // index entries read
  std::set<std::string> indexes;  // the index kinds walked
};

std::vector<std::string> AllPages(v1::Query::Stub* stub, v1::ListPatientsRequest request,
                                  int page_size, Cost* cost) {
  std::vector<std::string> ids;
  request.set_page_size(page_size);
  *cost = {};
  int* pages = &cost->pages;
  for (;;) {
    grpc::ClientContext ctx;
    v1::ListPatientsResponse response;
    grpc::Status s = stub->ListPatients(&ctx, request, &response);
    INFO(s.error_message());
    REQUIRE(s.ok());
    const auto& trailers = ctx.GetServerTrailingMetadata();
    auto examined = trailers.find("tend-candidates-examined");
    auto index = trailers.find("tend-index");
    REQUIRE(examined != trailers.end());
    REQUIRE(index != trailers.end());
    cost->examined += std::stoll(std::string(examined->second.data(), examined->second.size()));
    cost->indexes.insert(std::string(index->second.data(), index->second.size()));
    ++*pages;
    REQUIRE(response.patients_size() <= page_size);
    for (const auto& p : response.patients()) ids.push_back(p.patient_id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
    REQUIRE(*pages < 10000);
  }
  return ids;
}

TEST_CASE("ListPatients pages through exactly the matching patients, without gaps or repeats",
          "[integration]") {
  testing::TempDir dir;
  const std::string db = dir.Sub("state");
  EngineOptions options;
  options.commit_max_records = 150;  // patients rewritten often: stale index keys would show
  options.commit_interval = absl::Milliseconds(1);
  std::vector<v1::Event> events = testing::Cohort(400, 150, 17);
  {
    // Twenty patients' phones run 50 minutes ahead for their last check-in, recorded last: at
    // the partition clocks their views do not count it yet, though the index facts do (the
    // 'F' keys must bring them in: a silent patient's last activity is "today" in the index).
    int64_t last_recorded = 0;
    for (const auto& e : events) last_recorded = std::max(last_recorded, e.recorded_at().seconds());
    std::map<std::string, v1::Event> check_in;  // the last check-in of each patient
    for (const auto& e : events) {
      if (e.has_check_in()) check_in[e.patient_id()] = e;
    }
    int n = 0;
    for (auto& [patient, e] : check_in) {
      if (++n % 7 != 0 || n > 140) continue;
      e.set_event_id(e.event_id() + "-ahead");
      e.mutable_recorded_at()->set_seconds(last_recorded);
      e.mutable_occurred_at()->set_seconds(last_recorded + 50 * 60);
      events.push_back(e);
    }
  }
  testing::FoldThroughKafka(events, db, options);

  // Values to filter on, taken from the data.
  std::string program, staff;
  {
    DumpOptions dump;
    dump.db_dir = db;
    std::ostringstream out;
    REQUIRE(DumpPatients(dump, out, std::cerr).ok());
    const std::string text = out.str();
    const size_t p = text.find("\"program_id\":\"") + 14;
    program = text.substr(p, text.find('"', p) - p);
    const size_t s = text.find("\"current_staff_id\":\"") + 20;
    staff = text.substr(s, text.find('"', s) - s);
  }
  REQUIRE_FALSE(program.empty());
  REQUIRE_FALSE(staff.empty());

  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  QueryService query(storage->get(), projections::DefaultProjectionConfig());
  auto server = StartGrpcServer("127.0.0.1:0", {&query});
  REQUIRE(server.ok());
  auto stub = v1::Query::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port),
                                                     grpc::InsecureChannelCredentials()));

  struct Case {
    std::string where;
    v1::ListPatientsRequest request;
  };
  std::vector<Case> cases;
  auto add = [&](const std::string& where, auto fill) {
    Case c{where, {}};
    fill(&c.request);
    cases.push_back(c);
  };
  add("", [](auto*) {});
  add("stage=new", [](auto* r) { r->set_stage(v1::ChurnView::NEW); });
  add("stage=active", [](auto* r) { r->set_stage(v1::ChurnView::ACTIVE); });
  add("stage=silent", [](auto* r) { r->set_stage(v1::ChurnView::SILENT); });
  add("stage=lost", [](auto* r) { r->set_stage(v1::ChurnView::LOST); });
  add("stage=hard_churned", [](auto* r) { r->set_stage(v1::ChurnView::HARD_CHURNED); });
  add("program=" + program, [&](auto* r) { r->set_program_id(program); });
  add("staff=" + staff + ",activated=true", [&](auto* r) {
    r->set_staff_id(staff);
    r->set_activated(true);
  });
  add("activated=true", [](auto* r) { r->set_activated(true); });
  add("activated=false", [](auto* r) { r->set_activated(false); });
  add("risk>=0.5", [](auto* r) { r->set_min_churn_risk(0.5); });
  add("risk>=0.93", [](auto* r) { r->set_min_churn_risk(0.93); });
  add("risk>=0.35", [](auto* r) { r->set_min_churn_risk(0.35); });
  add("risk>=0.1", [](auto* r) { r->set_min_churn_risk(0.1); });  // below the lowest band
  add("activated=false,risk>=0.3", [](auto* r) {
    r->set_activated(false);
    r->set_min_churn_risk(0.3);
  });
  add("stage=active,risk>=0.2,program=" + program, [&](auto* r) {
    r->set_stage(v1::ChurnView::ACTIVE);
    r->set_min_churn_risk(0.2);
    r->set_program_id(program);
  });

  std::map<std::string, size_t> largest;  // per filter, the most patients an as-of matched
  const absl::Time end = absl::FromUnixSeconds(1767225600);  // the cohort's last day ends here
  // The partition clocks (after the last event); inside the cohort's 150 days, where patients
  // have activity after the as-of that the index already reflects; and after its end.
  for (const std::optional<absl::Time> as_of :
       {std::optional<absl::Time>(), std::optional<absl::Time>(end - absl::Hours(24 * 100)),
        std::optional<absl::Time>(end - absl::Hours(24 * 40 - 7)),
        std::optional<absl::Time>(end + absl::Hours(24 * 50))}) {
    for (Case c : cases) {
      if (as_of) c.request.mutable_as_of()->set_seconds(absl::ToUnixSeconds(*as_of));
      INFO("where " << c.where << " at "
                    << (as_of ? absl::FormatTime(*as_of, absl::UTCTimeZone()) : "the clocks"));
      const std::multiset<std::string> expected = Expected(db, c.where, as_of);
      largest[c.where] = std::max(largest[c.where], expected.size());
      Cost cost;
      const std::vector<std::string> served = AllPages(stub.get(), c.request, 7, &cost);
      const std::multiset<std::string> got(served.begin(), served.end());
      CHECK(got == expected);  // no gaps, and (a multiset) no repeats
      CHECK(std::set<std::string>(served.begin(), served.end()).size() == served.size());
      if (expected.size() > 7) CHECK(cost.pages >= static_cast<int>(expected.size() / 7));
      INFO("examined " << cost.examined << " for " << expected.size());
      // At the partition clocks (the default as-of, where few patients are active in the
      // current slot) a risk filter at or above the lowest band (0.3) is served by the risk
      // index, reading few more candidates than it returns. (Where nearly everyone matches, the planner
      // may rightly prefer walking everyone.)
      if (c.request.has_min_churn_risk() && c.request.min_churn_risk() >= 0.3 &&
          !c.request.has_activated() && c.request.program_id().empty()) {
        WARN(c.where << " at " << (as_of ? absl::FormatTime(*as_of, absl::UTCTimeZone()) : "clocks")
                     << ": examined " << cost.examined << " for " << expected.size());
        if (!as_of) {
          CHECK(cost.indexes == std::set<std::string>{"R"});
          // (The 20 patients ahead of the clock are walked too.)
          CHECK(cost.examined <= static_cast<int64_t>(expected.size() * 3 / 2 + 25));
        }
      }
    }
  }
  for (const auto& [where, n] : largest) {
    INFO("where " << where);
    CHECK(n > 0);  // every filter matched someone, so no comparison above was of empty sets
  }
  // A risk of exactly 1 (P(alive) under ~5e-17 in floating point, for patients with many active
  // days long after the last): the risk index's closed form never reaches 1, so those patients
  // are checked on their views, not ruled out by their keys.
  {
    const absl::Time far = absl::FromCivil(absl::CivilDay(9000, 1, 1), absl::UTCTimeZone());
    v1::ListPatientsRequest request;
    request.set_min_churn_risk(1.0);
    request.mutable_as_of()->set_seconds(absl::ToUnixSeconds(far));
    // Exactly, on the views (the dump's --where compares numbers printed to 10 digits, where
    // 0.99999999999 reads as 1).
    std::multiset<std::string> expected;
    REQUIRE((*storage)
                ->ForEachState([&](const v1::PatientState& state) {
                  const auto v = projections::ComputeView(projections::DefaultProjectionConfig(),
                                                          state, far);
                  if (v.churn().churn_risk() >= 1.0) expected.insert(state.patient_id());
                  return absl::OkStatus();
                })
                .ok());
    INFO("patients at a risk of 1: " << expected.size());
    CHECK_FALSE(expected.empty());
    Cost cost;
    const std::vector<std::string> served = AllPages(stub.get(), request, 50, &cost);
    CHECK(std::multiset<std::string>(served.begin(), served.end()) == expected);
  }
  // The stages split the population, so the index ranges miss no one.
  CHECK(Expected(db, "", std::nullopt).size() == 400);

  SECTION("a reader with another churn model walks other indexes, and still answers exactly") {
    projections::ProjectionConfig refitted = projections::DefaultProjectionConfig();
    refitted.bgnbd_alpha *= 2;
    QueryService other(storage->get(), refitted);
    auto other_server = StartGrpcServer("127.0.0.1:0", {&other});
    REQUIRE(other_server.ok());
    auto other_stub = v1::Query::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", other_server->port), grpc::InsecureChannelCredentials()));
    auto resolver = AsOfResolver::Load(**storage, std::nullopt);
    REQUIRE(resolver.ok());
    for (double threshold : {0.5, 0.9}) {
      std::multiset<std::string> expected;
      REQUIRE((*storage)
                  ->ForEachState([&](const v1::PatientState& state) {
                    const auto v = projections::ComputeView(refitted, state, resolver->For(state));
                    if (v.churn().churn_risk() >= threshold) expected.insert(state.patient_id());
                    return absl::OkStatus();
                  })
                  .ok());
      v1::ListPatientsRequest request;
      request.set_min_churn_risk(threshold);
      Cost cost;
      const std::vector<std::string> served = AllPages(other_stub.get(), request, 50, &cost);
      CHECK(std::multiset<std::string>(served.begin(), served.end()) == expected);
      CHECK(cost.indexes.count("R") == 0);
      CHECK_FALSE(expected.empty());
    }
    other_server->server->Shutdown();
  }

  SECTION("bad requests are INVALID_ARGUMENT naming the field") {
    auto code = [&](const v1::ListPatientsRequest& r, const std::string& field) {
      grpc::ClientContext ctx;
      v1::ListPatientsResponse response;
      grpc::Status s = stub->ListPatients(&ctx, r, &response);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK(s.error_message().rfind(field + ":", 0) == 0);
    };
    v1::ListPatientsRequest r;
    r.set_page_size(5000);
    code(r, "page_size");
    r = {};
    r.set_min_churn_risk(1.5);
    code(r, "min_churn_risk");
    r = {};
    r.set_page_token("not-a-token");
    code(r, "page_token");
    // A token of one query is refused by another.
    v1::ListPatientsRequest first;
    first.set_page_size(3);
    grpc::ClientContext ctx;
    v1::ListPatientsResponse response;
    REQUIRE(stub->ListPatients(&ctx, first, &response).ok());
    REQUIRE_FALSE(response.next_page_token().empty());
    r = {};
    r.set_stage(v1::ChurnView::ACTIVE);
    r.set_page_token(response.next_page_token());
    code(r, "page_token");
    r = {};
    r.set_stage(static_cast<v1::ChurnView::Stage>(42));
    code(r, "stage");
  }
  server->server->Shutdown();
}

}  // namespace
}  // namespace tend
