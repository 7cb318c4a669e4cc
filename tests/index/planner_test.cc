// The ListPatients planner (index/planner.h) without gRPC or Kafka: a simulated cohort folded
// with projections::Apply straight into a real RocksDB directory with its index keys
// (index/patient_index.h), then every page of a query against the oracle - every patient
// viewed and filtered (MatchesListFilters) with no index at all.
#include "index/planner.h"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/hash.h"
#include "index/patient_index.h"
#include "projections/patient.h"
#include "tests/cohort.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

constexpr int kPartitions = 4;

// A directory as the engine leaves it: states, index keys, each partition's clock, the index
// parameters. Returns the partition clocks.
std::map<int32_t, absl::Time> Fold(Storage* storage, const projections::ProjectionConfig& config) {
  std::map<std::string, v1::PatientState> states;
  std::set<std::pair<std::string, std::string>> seen;  // dedupe (patient, event_id)
  std::map<int32_t, int64_t> clock_s;
  for (const v1::Event& e : testing::Cohort(400, 60, 21)) {
    if (!seen.insert({e.patient_id(), e.event_id()}).second) continue;
    const int32_t partition = static_cast<int32_t>(Fingerprint64(e.patient_id()) % kPartitions);
    v1::PatientState& s = states[e.patient_id()];
    projections::Apply(config, e, &s);
    s.set_partition(partition);
    clock_s[partition] = std::max(clock_s[partition], e.recorded_at().seconds());
  }
  StateBatch batch = storage->NewBatch();
  for (const auto& [id, s] : states) {
    batch.PutPatient(s.partition(), s, {});
    for (const std::string& key : PatientIndexKeys(s.partition(), s, config)) batch.PutIndex(key);
  }
  std::map<int32_t, absl::Time> clocks;
  for (const auto& [partition, s] : clock_s) {
    v1::PartitionCheckpoint cp;
    cp.set_topic("tend.events");
    cp.set_partition(partition);
    cp.set_next_offset(1);
    cp.mutable_clock()->set_seconds(s);
    batch.PutCheckpoint(cp);
    clocks[partition] = absl::FromUnixSeconds(s);
  }
  batch.PutIndexParameters(PatientIndexParameters(config));
  REQUIRE(storage->Commit(&batch).ok());
  return clocks;
}

// A directory folded as above, viewed with the default config.
struct Folded {
  Folded() {
    auto opened = Storage::Open(dir.Sub("db"));
    REQUIRE(opened.ok());
    storage = *std::move(opened);
    clocks = Fold(storage.get(), config);
  }
  testing::TempDir dir;
  std::unique_ptr<Storage> storage;
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  std::map<int32_t, absl::Time> clocks;
};

// The oracle: every patient viewed at its partition's clock (or `as_of`) and filtered.
std::multiset<std::string> Walk(const Storage& storage, const projections::ProjectionConfig& config,
                                const std::map<int32_t, absl::Time>& clocks,
                                const v1::ListPatientsRequest& request) {
  std::multiset<std::string> ids;
  REQUIRE(storage
              .ForEachState([&](const v1::PatientState& s) {
                const absl::Time as_of = request.has_as_of()
                                             ? absl::FromUnixSeconds(request.as_of().seconds())
                                             : clocks.at(s.partition());
                if (MatchesListFilters(request, projections::ComputeView(config, s, as_of))) {
                  ids.insert(s.patient_id());
                }
                return absl::OkStatus();
              })
              .ok());
  return ids;
}

// Every page, `page_size` at a time; the index kinds walked go to `kinds`.
std::multiset<std::string> Pages(const Storage& storage,
                                 const projections::ProjectionConfig& config,
                                 v1::ListPatientsRequest request, int page_size,
                                 std::set<char>* kinds) {
  std::multiset<std::string> ids;
  request.set_page_size(page_size);
  for (int pages = 0;; ++pages) {
    REQUIRE(pages < 10'000);
    v1::ListPatientsResponse response;
    ListPatientsCost cost;
    absl::Status s = ListPatientsPage(storage, config, request, &response, &cost);
    INFO(s.message());
    REQUIRE(s.ok());
    REQUIRE(response.patients_size() <= page_size);
    kinds->insert(cost.index_kind);
    for (const auto& p : response.patients()) ids.insert(p.patient_id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return ids;
}

TEST_CASE("every page of a query together is exactly the patients the filters match",
          "[planner]") {
  Folded f;
  const Storage& storage = *f.storage;

  struct Case {
    std::string name;
    v1::ListPatientsRequest request;
    char index;  // the index the planner should walk
  };
  std::vector<Case> cases;
  auto add = [&](std::string name, char index, auto set) {
    v1::ListPatientsRequest r;
    set(&r);
    cases.push_back({std::move(name), r, index});
  };
  add("no filter: every patient", 'L', [](auto*) {});
  add("silent", 'L', [](auto* r) { r->set_stage(v1::ChurnView::SILENT); });
  add("hard churned", 'H', [](auto* r) { r->set_stage(v1::ChurnView::HARD_CHURNED); });
  add("not activated", 'A', [](auto* r) { r->set_activated(false); });
  add("risk >= 0.7", 'R', [](auto* r) { r->set_min_churn_risk(0.7); });
  add("active at a fixed as-of", 'L', [](auto* r) {
    r->set_stage(v1::ChurnView::ACTIVE);
    r->mutable_as_of()->set_seconds(1767225600 - 20 * 86400);
  });
  for (const Case& c : cases) {
    SECTION(c.name) {
      const std::multiset<std::string> want = Walk(storage, f.config, f.clocks, c.request);
      if (c.name.rfind("no filter", 0) == 0) CHECK(want.size() == 400);
      CHECK_FALSE(want.empty());
      for (int page_size : {7, 1000}) {
        std::set<char> kinds;
        CHECK(Pages(storage, f.config, c.request, page_size, &kinds) == want);
        CHECK(kinds == std::set<char>{c.index});
      }
    }
  }
}

TEST_CASE("bad requests and foreign tokens are refused naming the field", "[planner]") {
  Folded f;
  const Storage& storage = *f.storage;
  const projections::ProjectionConfig& config = f.config;
  auto problem = [&](const v1::ListPatientsRequest& r) {
    v1::ListPatientsResponse response;
    absl::Status s = ListPatientsPage(storage, config, r, &response, nullptr);
    CHECK(absl::IsInvalidArgument(s));
    return std::string(s.message());
  };
  v1::ListPatientsRequest r;
  r.set_page_size(1001);
  CHECK(problem(r).rfind("page_size:", 0) == 0);
  r.Clear();
  r.set_min_churn_risk(1.5);
  CHECK(problem(r).rfind("min_churn_risk:", 0) == 0);
  r.Clear();
  r.set_program_id("a b");
  // The rule, not the bad value: a request field is not echoed back.
  CHECK(problem(r) == "program_id: must be 1-128 characters of [A-Za-z0-9._:-]");
  r.Clear();
  r.set_page_token("not-a-token");
  CHECK(problem(r).rfind("page_token:", 0) == 0);
  // A token of one query does not continue another.
  v1::ListPatientsRequest silent;
  silent.set_stage(v1::ChurnView::SILENT);
  silent.set_page_size(1);
  v1::ListPatientsResponse first;
  REQUIRE(ListPatientsPage(storage, config, silent, &first, nullptr).ok());
  REQUIRE_FALSE(first.next_page_token().empty());
  v1::ListPatientsRequest lost;
  lost.set_stage(v1::ChurnView::LOST);
  lost.set_page_token(first.next_page_token());
  CHECK(problem(lost) == "page_token: belongs to a query with other filters or as_of");
}

TEST_CASE("while the index is being rebuilt the answer is UNAVAILABLE, not a partial list",
          "[planner]") {
  Folded f;
  StateBatch batch = f.storage->NewBatch();
  batch.DeleteIndexParameters();  // what a rebuild starts with
  REQUIRE(f.storage->Commit(&batch).ok());
  v1::ListPatientsResponse response;
  CHECK(absl::IsUnavailable(
      ListPatientsPage(*f.storage, f.config, v1::ListPatientsRequest(), &response, nullptr)));
}

}  // namespace
}  // namespace tend
