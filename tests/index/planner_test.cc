// The ListPatients planner (index/planner.h) without gRPC or Kafka: a simulated cohort folded
// with projections::Apply straight into a real RocksDB directory with its index keys
// (index/patient_index.h), then every page of a query against the oracle - every patient
// viewed and filtered (MatchesListFilters) with no index at all.
#include "index/planner.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/crc32c.h"
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
  // Programmes and health managers are an event's free text, not ids: some hold spaces and
  // brackets, one a NUL (which the index key uses as its separator), one a prefix of another.
  int i = 0;
  for (auto& [id, s] : states) {
    if (i % 5 == 0) s.mutable_enrollment()->set_program_id("Diabetes Programme 2");
    if (i % 9 == 0) s.mutable_enrollment()->set_program_id(std::string("a\0b", 3));
    if (i % 13 == 0) s.mutable_enrollment()->set_program_id("a");
    if (i % 6 == 0) s.mutable_acquisition()->set_current_staff_id("Dr. Li (night shift)");
    ++i;
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
  add("a programme of free text", 'P',
      [](auto* r) { r->set_program_id("Diabetes Programme 2"); });
  add("a programme holding a NUL", 'P',
      [](auto* r) { r->set_program_id(std::string("a\0b", 3)); });
  add("a programme that is a prefix of another", 'P', [](auto* r) { r->set_program_id("a"); });
  add("a health manager of free text", 'S',
      [](auto* r) { r->set_staff_id("Dr. Li (night shift)"); });
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
  r.set_program_id(std::string(257, 'p'));
  // The rule, not the bad value: a request field is not echoed back.
  CHECK(problem(r) == "program_id: must be 1-256 bytes, got 257");
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

TEST_CASE("a walk over runs of partitions, as instances gather it, is the whole walk",
          "[planner]") {
  // What services/query_service.h does over several owners, done here in one directory: each
  // run of partitions walked alone, the token handed on within a run, a fresh one
  // (ListPatientsTokenAt) when a page ends exactly at a run's end.
  Folded f;
  for (int filter = 0; filter < 3; ++filter) {
    v1::ListPatientsRequest request;
    if (filter == 1) request.set_activated(true);
    if (filter == 2) request.set_stage(v1::ChurnView::ACTIVE);
    const std::multiset<std::string> want = Walk(*f.storage, f.config, f.clocks, request);
    REQUIRE(!want.empty());
    for (const std::vector<std::vector<int32_t>>& runs :
         std::vector<std::vector<std::vector<int32_t>>>{{{0}, {1}, {2}, {3}}, {{0, 1}, {2, 3}},
                                                        {{0, 1, 2}, {3}}}) {
      for (int page_size : {1, 5, 23}) {
        request.set_page_size(page_size);
        request.clear_page_token();
        std::multiset<std::string> got;
        int at_run_end = 0;
        for (int pages = 0;; ++pages) {
          REQUIRE(pages < 10'000);
          int32_t partition = 0;
          if (!request.page_token().empty()) {
            auto p = ListPatientsTokenPartition(request);
            REQUIRE(p.ok());
            partition = *p;
          }
          if (partition >= kPartitions) break;
          // The run holding the token's partition, from that partition on.
          std::vector<int32_t> run;
          for (const auto& r : runs) {
            for (int32_t q : r) {
              if (std::find(r.begin(), r.end(), partition) != r.end() && q >= partition) {
                run.push_back(q);
              }
            }
          }
          v1::ListPatientsRequest sub = request;
          int remaining = page_size;
          std::string next;
          for (;;) {
            sub.set_page_size(remaining);
            v1::ListPatientsResponse response;
            REQUIRE(ListPatientsPage(*f.storage, f.config, sub, &response, nullptr, &run).ok());
            for (const auto& v : response.patients()) got.insert(v.patient_id());
            remaining -= response.patients_size();
            if (!response.next_page_token().empty()) {
              next = response.next_page_token();
              break;
            }
            // The run is done: on to the next, or a token at its start when the page is full.
            const int32_t after = run.back() + 1;
            if (after >= kPartitions) break;
            run.clear();
            for (const auto& r : runs) {
              if (r.front() == after) run = r;
            }
            REQUIRE(!run.empty());
            sub.clear_page_token();
            if (remaining == 0) {
              next = ListPatientsTokenAt(request, after);
              ++at_run_end;
              break;
            }
          }
          if (next.empty()) break;
          request.set_page_token(next);
        }
        INFO("filter " << filter << ", " << runs.size() << " runs, pages of " << page_size);
        CHECK(got == want);
        // Unfiltered, every key matches: a page of one ends exactly at each run's last patient.
        if (page_size == 1 && filter == 0) CHECK(at_run_end > 0);
      }
    }
  }
}

TEST_CASE("crafted page tokens are refused, however they are made", "[planner]") {
  Folded f;
  v1::ListPatientsRequest request;
  request.set_page_size(3);
  const std::string at2 = ListPatientsTokenAt(request, 2);
  request.set_page_token(at2);
  auto partition = ListPatientsTokenPartition(request);
  REQUIRE(partition.ok());
  CHECK(*partition == 2);
  // A walk from partition 2's start returns only patients of partitions 2 and 3.
  v1::ListPatientsResponse response;
  REQUIRE(ListPatientsPage(*f.storage, f.config, request, &response, nullptr).ok());
  REQUIRE(response.patients_size() > 0);
  for (const auto& v : response.patients()) {
    CHECK(static_cast<int32_t>(Fingerprint64(v.patient_id()) % kPartitions) >= 2);
  }
  // A token's bytes with their CRC-32C (index/planner.h), so that what is crafted below reaches
  // the checks behind the CRC's.
  auto sign = [](std::string raw) {
    const uint32_t crc = Crc32c(raw);
    for (int i = 3; i >= 0; --i) raw.push_back(static_cast<char>(crc >> (8 * i)));
    return raw;
  };
  auto refused = [&](const std::string& unsigned_raw, bool signed_ = true) {
    v1::ListPatientsRequest r = request;
    r.set_page_token(absl::WebSafeBase64Escape(signed_ ? sign(unsigned_raw) : unsigned_raw));
    v1::ListPatientsResponse ignored;
    const absl::Status s = ListPatientsPage(*f.storage, f.config, r, &ignored, nullptr);
    const bool page_refused = absl::IsInvalidArgument(s) && s.message().rfind("page_token:", 0) == 0;
    return page_refused && !ListPatientsTokenPartition(r).ok();
  };
  std::string good;
  REQUIRE(absl::WebSafeBase64Unescape(at2, &good));
  CHECK(sign(good.substr(0, good.size() - 4)) == good);
  CHECK_FALSE(refused(good, /*signed_=*/false));
  CHECK(refused(good.substr(0, good.size() - 1), /*signed_=*/false));  // cut short
  std::string flipped = good;
  flipped[12] ^= 1;
  CHECK(refused(flipped, /*signed_=*/false));
  good.resize(good.size() - 4);  // what is signed again below
  CHECK(refused(good + "x"));                         // a '*' cursor is a bare partition
  CHECK(refused(good.substr(0, good.size() - 1)));    // a cursor shorter than a partition
  std::string huge = good;
  huge.replace(11, 4, "\xff\xff\xff\xff");          // partition 2^32 - 1
  CHECK(refused(huge));
  std::string kind = good;
  kind[10] = 'Q';  // no plan of this query walks that kind
  v1::ListPatientsRequest r = request;
  r.set_page_token(absl::WebSafeBase64Escape(sign(kind)));
  v1::ListPatientsResponse ignored;
  CHECK(absl::IsInvalidArgument(ListPatientsPage(*f.storage, f.config, r, &ignored, nullptr)));
  r.set_page_token(std::string(5000, 'A'));  // too long to be ours: not even decoded
  CHECK(absl::IsInvalidArgument(ListPatientsPage(*f.storage, f.config, r, &ignored, nullptr)));
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
