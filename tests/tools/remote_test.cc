// tools/remote.h against a scripted tend.v1.Query over real gRPC (port 0): the pages a gathering
// instance could send while patients move along the walk, and a rebalance in between. Each
// patient reaches the caller once; an UNAVAILABLE is waited out with the server's retry hint;
// one that lasts is reported, naming the server's words.
#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "index/planner.h"
#include "services/query_router.h"
#include "services/server.h"
#include "tools/remote.h"

namespace tend {
namespace {

// Answers ListPatients from a script: one entry per call, in order.
class ScriptedQuery final : public v1::Query::Service {
 public:
  struct Step {
    std::vector<std::string> patients;
    int32_t next_partition = -1;  // -1: the last page
    bool unavailable = false;
  };
  explicit ScriptedQuery(std::vector<Step> steps) : steps_(std::move(steps)) {}

  grpc::Status ListPatients(grpc::ServerContext* context, const v1::ListPatientsRequest* request,
                            v1::ListPatientsResponse* response) override {
    requests.push_back(*request);
    if (calls_ >= steps_.size()) return grpc::Status(grpc::StatusCode::INTERNAL, "script over");
    const Step& step = steps_[calls_++];
    if (step.unavailable) {
      context->AddTrailingMetadata(kRetryPushbackMetadata, "20");
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "partition 2 is moving");
    }
    for (const std::string& id : step.patients) response->add_patients()->set_patient_id(id);
    if (step.next_partition >= 0) {
      v1::ListPatientsRequest query = *request;
      query.clear_page_token();
      response->set_next_page_token(ListPatientsTokenAt(query, step.next_partition));
    }
    context->AddTrailingMetadata(kPartitionOffsetsMetadata,
                                 absl::StrCat(calls_ - 1, ":", 100 * calls_));
    return grpc::Status::OK;
  }
  // CohortStats: RESOURCE_EXHAUSTED `busy` times (with the retry hint when `busy_hint`, as an
  // instance at its bound on cohort reads answers), then 7 patients.
  grpc::Status CohortStats(grpc::ServerContext* context, const v1::CohortStatsRequest*,
                           v1::CohortStatsResponse* response) override {
    ++cohort_calls;
    if (busy.load() > 0) {
      --busy;
      if (busy_hint) context->AddTrailingMetadata(kRetryPushbackMetadata, "20");
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "2 cohort reads are running");
    }
    response->mutable_stats()->set_patients(7);
    return grpc::Status::OK;
  }
  std::vector<v1::ListPatientsRequest> requests;
  // Set by the test between calls, read by the server's threads.
  std::atomic<int> busy{0};
  std::atomic<bool> busy_hint{true};
  std::atomic<int> cohort_calls{0};

 private:
  std::vector<Step> steps_;
  size_t calls_ = 0;
};

TEST_CASE("a remote walk gives each patient once and waits out a rebalance") {
  // Partition 0 over two pages, "b" on both (its activity moved it along the walk); then the
  // walk is in partition 2 (partition 0's ids are forgotten: they cannot come again), where a
  // rebalance holds it once and "d" comes twice.
  ScriptedQuery query({{{"a", "b"}, 0},
                       {{"b", "c"}, 2},
                       {{}, -1, true},
                       {{"d", "e"}, 2},
                       {{"d", "f"}, -1}});
  auto server = StartGrpcServer("127.0.0.1:0", {&query});
  REQUIRE(server.ok());
  RemoteOptions remote;
  remote.target = absl::StrCat("127.0.0.1:", server->port);
  std::vector<std::string> got;
  std::map<int32_t, int64_t> offsets;
  std::ostringstream progress;
  const absl::Status s = ForEachRemotePatient(
      remote, absl::FromUnixSeconds(1'900'000'000),
      [&](const v1::PatientView& view) {
        got.push_back(view.patient_id());
        return absl::OkStatus();
      },
      &offsets, progress);
  INFO(s << progress.str());
  REQUIRE(s.ok());
  CHECK(got == std::vector<std::string>{"a", "b", "c", "d", "e", "f"});
  CHECK(progress.str().find("waiting: " + remote.target + ": partition 2 is moving") !=
        std::string::npos);
  // Every call asked for the same query, 1,000 at a time at the as-of, each page after the last.
  REQUIRE(query.requests.size() == 5);
  for (const auto& r : query.requests) {
    CHECK(r.page_size() == 1000);
    CHECK(r.as_of().seconds() == 1'900'000'000);
  }
  CHECK(query.requests[0].page_token().empty());
  CHECK(query.requests[2].page_token() == query.requests[3].page_token());  // the retry
  CHECK(offsets == std::map<int32_t, int64_t>{{0, 100}, {1, 200}, {3, 400}, {4, 500}});
}

TEST_CASE("a remote walk that stays unavailable fails naming the server's answer") {
  ScriptedQuery query({{{}, -1, true}, {{}, -1, true}, {{}, -1, true}, {{}, -1, true},
                       {{}, -1, true}, {{}, -1, true}, {{}, -1, true}, {{}, -1, true}});
  auto server = StartGrpcServer("127.0.0.1:0", {&query});
  REQUIRE(server.ok());
  RemoteOptions remote;
  remote.target = absl::StrCat("127.0.0.1:", server->port);
  remote.retry_for = absl::Milliseconds(50);
  std::ostringstream progress;
  const absl::Status s = ForEachRemotePatient(
      remote, std::nullopt, [](const v1::PatientView&) { return absl::OkStatus(); }, nullptr,
      progress);
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(s.message().find("partition 2 is moving") != std::string::npos);
}

TEST_CASE("a remote CohortStats waits out an instance at its bound on cohort reads") {
  ScriptedQuery query({});
  query.busy = 2;
  auto server = StartGrpcServer("127.0.0.1:0", {&query});
  REQUIRE(server.ok());
  RemoteOptions remote;
  remote.target = absl::StrCat("127.0.0.1:", server->port);
  std::ostringstream progress;
  auto stats = FetchCohortStats(remote, std::nullopt, progress);
  INFO(stats.status() << progress.str());
  REQUIRE(stats.ok());
  CHECK(stats->patients() == 7);
  CHECK(query.cohort_calls == 3);
  CHECK(progress.str().find("waiting: " + remote.target + ": 2 cohort reads are running") !=
        std::string::npos);
  // gRPC's own RESOURCE_EXHAUSTED (no hint: a message too large, no thread free) is an error.
  query.busy = 1;
  query.busy_hint = false;
  query.cohort_calls = 0;
  stats = FetchCohortStats(remote, std::nullopt, progress);
  CHECK(stats.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(query.cohort_calls == 1);
}

}  // namespace
}  // namespace tend
