// The bound on cohort reads and their stop when the caller goes (services/full_scans.h), over
// real gRPC (port 0) on a real state directory: a CohortStats beyond the bound is refused at
// once with a retry hint, and a read whose caller cancels stops instead of reading on.
#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "projections/config.h"
#include "services/full_scans.h"
#include "services/query_router.h"
#include "services/query_service.h"
#include "services/server.h"
#include "storage/storage.h"
#include "tests/testing.h"

namespace tend {
namespace {

TEST_CASE("FullScans hands out at most its bound of slots, and takes them back", "[services]") {
  FullScans scans(2);
  std::optional<FullScans::Slot> a = scans.TryTake();
  std::optional<FullScans::Slot> b = scans.TryTake();
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(scans.running() == 2);
  CHECK(!scans.TryTake().has_value());
  CHECK(scans.refused() == 1);
  {
    FullScans::Slot moved = std::move(*a);  // a moved-from slot releases nothing
    a.reset();
    CHECK(scans.running() == 2);
  }
  CHECK(scans.running() == 1);
  CHECK(scans.TryTake().has_value());  // taken and released at once
  b.reset();
  CHECK(scans.running() == 0);
}

// A directory of many patients (a folded cohort and copies of it), served by a lone Query
// service whose bound on cohort reads is one.
struct Served {
  testing::TempDir dir;
  std::unique_ptr<Storage> storage;
  std::shared_ptr<FullScans> scans = std::make_shared<FullScans>(1);
  std::unique_ptr<QueryService> query;
  RunningServer server;
  std::unique_ptr<v1::Query::Stub> stub;
  int64_t patients = 0;
};

std::unique_ptr<Served> Serve() {
  auto served = std::make_unique<Served>();
  const std::string db = served->dir.Sub("state");
  EngineOptions options;
  options.commit_max_records = 5000;
  testing::FoldThroughKafka(testing::Cohort(200, 120, 7), db, options);
  // 200 x 151 patients: a read of every one takes a good part of a second on a small host.
  testing::CopyPatients(db, 150);
  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  served->storage = *std::move(storage);
  served->query =
      std::make_unique<QueryService>(served->storage.get(), projections::DefaultProjectionConfig());
  served->query->set_full_scans(served->scans);
  auto server = StartGrpcServer("127.0.0.1:0", {served->query.get()});
  REQUIRE(server.ok());
  served->server = *std::move(server);
  served->stub = v1::Query::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", served->server.port), grpc::InsecureChannelCredentials()));
  return served;
}

TEST_CASE("CohortStats beyond the bound is refused at once with a retry hint, and a read whose "
          "caller cancels stops",
          "[integration]") {
  const std::unique_ptr<Served> served = Serve();

  SECTION("beyond the bound: RESOURCE_EXHAUSTED naming it, then served once a slot is free") {
    std::optional<FullScans::Slot> held = served->scans->TryTake();
    REQUIRE(held.has_value());
    grpc::ClientContext refused;
    v1::CohortStatsResponse none;
    const grpc::Status s = served->stub->CohortStats(&refused, v1::CohortStatsRequest(), &none);
    CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(s.error_message().find("--max-cohort-scans") != std::string::npos);
    CHECK(refused.GetServerTrailingMetadata().count(kRetryPushbackMetadata) == 1);
    CHECK(served->scans->refused() == 1);
    held.reset();
    grpc::ClientContext context;
    v1::CohortStatsResponse stats;
    const grpc::Status ok = served->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
    INFO(ok.error_message());
    REQUIRE(ok.ok());
    CHECK(stats.stats().patients() == 200 * 151);
    CHECK(served->scans->running() == 0);
    CHECK(served->scans->stopped() == 0);
  }

  SECTION("a caller that cancels mid-read: the read stops and its slot is free") {
    grpc::ClientContext context;
    grpc::Status status;
    std::thread call([&] {
      v1::CohortStatsResponse stats;
      status = served->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
    });
    // Cancel once the read has begun.
    REQUIRE(testing::WaitUntil([&] { return served->scans->running() > 0; }, absl::Seconds(10)));
    REQUIRE(served->scans->running() == 1);
    context.TryCancel();
    call.join();
    CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
    CHECK(testing::WaitUntil([&] { return served->scans->running() == 0; }, absl::Seconds(10)));
    // Stopped by its check, not read to the end: a read of all 30,200 patients would not be.
    CHECK(served->scans->stopped() == 1);
  }
}

}  // namespace
}  // namespace tend
