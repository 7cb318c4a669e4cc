// Query's CohortStats and ListPatients gathered over two instances (services/query_service.h,
// services/peer_service.h), over real gRPC on port 0: two servers, each a QueryService and a
// PeerService on a copy of one folded state, and routers the test controls, so that who owns
// which partition changes when the test says - between pages, or to nobody. Whatever the
// ownership, the gathered answers equal a lone engine's; while a partition has no owner they are
// UNAVAILABLE, and a page token goes on where it stopped once it has one again.
#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "auth/auth.h"
#include "index/planner.h"
#include "kafka/partitioner.h"
#include "projections/config.h"
#include "services/full_scans.h"
#include "services/peer_service.h"
#include "services/query_service.h"
#include "services/server.h"
#include "storage/storage.h"
#include "storage/views.h"
#include "tests/testing.h"

namespace tend {
namespace {

constexpr int kPartitions = 4;  // testing::BrokerWith's

// Who owns each partition: an address, or "" for nobody. Shared by the test's routers.
struct Owners {
  absl::Mutex mu;
  std::vector<std::string> of = std::vector<std::string>(kPartitions);
  // After this many more questions about a partition's owner, `of` becomes `then` (-1: never):
  // ownership that moves while a read is under way.
  int flip_after = -1;
  std::vector<std::string> then;
  void Set(std::vector<std::string> owners) {
    absl::MutexLock lock(&mu);
    of = std::move(owners);
    flip_after = -1;
  }
};

class TestRouter final : public QueryRouter {
 public:
  TestRouter(std::string self, Owners* owners) : self_(std::move(self)), owners_(owners) {}
  Route RouteOf(absl::string_view) const override { return Route(); }  // not used here
  Route RouteOfPartition(int32_t partition) const override {
    absl::MutexLock lock(&owners_->mu);
    if (owners_->flip_after >= 0 && owners_->flip_after-- == 0) owners_->of = owners_->then;
    Route r;
    r.partition = partition;
    const std::string& owner = owners_->of[static_cast<size_t>(partition)];
    if (owner.empty()) {
      r.why = absl::StrCat("nobody owns partition ", partition);
    } else if (owner == self_) {
      r.kind = Route::Kind::kHere;
      r.offset = 1000 + partition;
    } else {
      r.kind = Route::Kind::kPeer;
      r.peer = owner;
    }
    return r;
  }
  int32_t partitions() const override { return kPartitions; }
  const std::string& self() const override { return self_; }
  absl::StatusOr<PeerStubs> Peer(const std::string& address) override {
    absl::MutexLock lock(&mu_);
    auto& channel = channels_[address];
    if (channel == nullptr) {
      channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
      query_[address] = v1::Query::NewStub(channel);
      parts_[address] = v1::Peer::NewStub(channel);
    }
    return PeerStubs{query_[address].get(), parts_[address].get()};
  }

 private:
  const std::string self_;
  Owners* const owners_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::map<std::string, std::unique_ptr<v1::Query::Stub>> query_;
  std::map<std::string, std::unique_ptr<v1::Peer::Stub>> parts_;
};

// A Peer that answers every part OK, for partition 0 alone and with nothing in it: what an
// address that is no instance of this deployment might answer (a forged membership record).
class LyingPeer final : public v1::Peer::Service {
 public:
  grpc::Status CohortPart(grpc::ServerContext*, const v1::CohortPartRequest*,
                          v1::CohortPartResponse* response) override {
    response->add_offsets()->set_partition(0);
    return grpc::Status::OK;
  }
  grpc::Status ListPart(grpc::ServerContext*, const v1::ListPartRequest*,
                        v1::ListPartResponse* response) override {
    response->add_offsets()->set_partition(0);
    return grpc::Status::OK;
  }
};

// A Peer that answers a ListPart for the partitions asked with no patients, as if it had
// examined a billion index entries, and keeps what it was asked.
class GreedyPeer final : public v1::Peer::Service {
 public:
  static constexpr int64_t kExamined = 1'000'000'000;
  grpc::Status ListPart(grpc::ServerContext*, const v1::ListPartRequest* request,
                        v1::ListPartResponse* response) override {
    absl::MutexLock lock(&mu_);
    asked_.push_back(*request);
    for (int32_t p : request->partitions()) response->add_offsets()->set_partition(p);
    response->set_examined(kExamined);
    return grpc::Status::OK;
  }
  std::vector<v1::ListPartRequest> asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::ListPartRequest> asked_ ABSL_GUARDED_BY(mu_);
};

// A Peer whose every CohortPart fails as gRPC itself fails a call it cannot take (a message too
// large): RESOURCE_EXHAUSTED without a retry hint.
class ExhaustedPeer final : public v1::Peer::Service {
 public:
  grpc::Status CohortPart(grpc::ServerContext*, const v1::CohortPartRequest*,
                          v1::CohortPartResponse*) override {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "message larger than max");
  }
};

// One instance: its own copy of the state, a Query and a Peer service on port 0.
struct Instance {
  std::unique_ptr<Storage> storage;
  std::shared_ptr<TestRouter> router;
  std::unique_ptr<QueryService> query;
  std::unique_ptr<PeerService> peer;
  RunningServer server;
  std::unique_ptr<v1::Query::Stub> stub;
  std::shared_ptr<FullScans> scans;  // its bound on cohort reads, shared by Query and Peer
};

// A holdout and a rule's variants: CohortStats compares their arms, each instance its part.
std::vector<projections::ArmSplit> Experiments() {
  return {{"global", {"holdout", "treated"}, {0.3, 1.0}, "", absl::InfinitePast()},
          {"variants:welcome", {"a", "b"}, {0.5, 1.0}, "", absl::FromUnixSeconds(1764547200)}};
}

std::unique_ptr<Instance> StartInstance(const std::string& db, int port, Owners* owners,
                                        std::shared_ptr<const Authorizer> tokens = nullptr,
                                        int max_cohort_scans = FullScans::kDefaultMax) {
  auto instance = std::make_unique<Instance>();
  instance->scans = std::make_shared<FullScans>(max_cohort_scans);
  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  instance->storage = *std::move(storage);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  instance->router = std::make_shared<TestRouter>(address, owners);
  const auto config = projections::DefaultProjectionConfig();
  instance->query = std::make_unique<QueryService>(instance->storage.get(), config);
  instance->query->set_router(instance->router);
  instance->query->set_authorizer(tokens);
  instance->query->set_experiments(Experiments());
  instance->query->set_full_scans(instance->scans);
  instance->peer =
      std::make_unique<PeerService>(instance->storage.get(), config, instance->router);
  instance->peer->set_authorizer(tokens);
  instance->peer->set_experiments(Experiments());
  instance->peer->set_full_scans(instance->scans);
  auto server = StartGrpcServer(address, {instance->query.get(), instance->peer.get()});
  REQUIRE(server.ok());
  instance->server = *std::move(server);
  instance->stub =
      v1::Query::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  return instance;
}

struct Page {
  grpc::Status status;
  v1::ListPatientsResponse response;
  std::map<std::string, std::string> trailers;
};

Page ListPage(v1::Query::Stub* stub, const v1::ListPatientsRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  Page page;
  page.status = stub->ListPatients(&context, request, &page.response);
  for (const auto& [k, v] : context.GetServerTrailingMetadata()) {
    page.trailers[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
  }
  return page;
}

// Every page from `stub`, calling `between` after each: the ids in the order served.
std::vector<std::string> AllPages(v1::Query::Stub* stub, v1::ListPatientsRequest request,
                                  const std::function<void(int)>& between = nullptr,
                                  std::set<std::string>* answered_by = nullptr) {
  std::vector<std::string> ids;
  for (int pages = 0;; ++pages) {
    REQUIRE(pages < 5000);
    const Page page = ListPage(stub, request);
    INFO(page.status.error_message());
    REQUIRE(page.status.ok());
    REQUIRE(page.response.patients_size() <= request.page_size());
    for (const auto& view : page.response.patients()) ids.push_back(view.patient_id());
    if (answered_by != nullptr) {
      for (absl::string_view a : absl::StrSplit(page.trailers.at(kAnsweredByMetadata), ',')) {
        answered_by->insert(std::string(a));
      }
    }
    if (page.response.next_page_token().empty()) return ids;
    request.set_page_token(page.response.next_page_token());
    if (between) between(pages);
  }
}

TEST_CASE("gathered ListPatients and CohortStats equal a lone engine's, whoever owns what",
          "[integration]") {
  testing::TempDir dir;
  // Every section starts from copies of one fold, made by the first (a fold through the dev
  // broker waits ~3 s for its group's first join: a fold for each of the ten sections was most
  // of this test).
  static const testing::TempDir folded_dir;
  static const std::string folded = [] {
    EngineOptions options;
    options.commit_max_records = 500;
    testing::FoldThroughKafka(testing::Cohort(300, 90, 23), folded_dir.Sub("a"), options);
    return folded_dir.Sub("a");
  }();
  for (const char* copy : {"a", "b", "lone"}) {
    std::filesystem::copy(folded, dir.Sub(copy), std::filesystem::copy_options::recursive);
  }

  Owners owners;
  const int a_port = testing::FreePort(), b_port = testing::FreePort();
  const std::string a_addr = absl::StrCat("127.0.0.1:", a_port);
  const std::string b_addr = absl::StrCat("127.0.0.1:", b_port);
  auto a = StartInstance(dir.Sub("a"), a_port, &owners);
  auto b = StartInstance(dir.Sub("b"), b_port, &owners);
  // A third pair that requires tokens (b2 answers for the partitions a2 does not own).
  auto tokens = Authorizer::Parse(absl::StrCat("query ", std::string(40, 'q'), "\ningest ",
                                               std::string(40, 'i'), "\n"),
                                  "test tokens");
  REQUIRE(tokens.ok());
  std::shared_ptr<const Authorizer> shared_tokens = *std::move(tokens);
  Owners token_owners;
  const int a2_port = testing::FreePort(), b2_port = testing::FreePort();
  const std::string a2_addr = absl::StrCat("127.0.0.1:", a2_port);
  const std::string b2_addr = absl::StrCat("127.0.0.1:", b2_port);
  token_owners.Set({a2_addr, b2_addr, a2_addr, b2_addr});
  std::filesystem::copy(dir.Sub("a"), dir.Sub("a2"), std::filesystem::copy_options::recursive);
  std::filesystem::copy(dir.Sub("a"), dir.Sub("b2"), std::filesystem::copy_options::recursive);
  auto a2 = StartInstance(dir.Sub("a2"), a2_port, &token_owners, shared_tokens);
  auto b2 = StartInstance(dir.Sub("b2"), b2_port, &token_owners, shared_tokens);
  const auto config = projections::DefaultProjectionConfig();

  // The lone engine: a copy of its own, answered without a router.
  auto lone_storage = Storage::Open(dir.Sub("lone"));
  REQUIRE(lone_storage.ok());
  QueryService lone(lone_storage->get(), config);
  lone.set_experiments(Experiments());
  auto lone_server = StartGrpcServer("127.0.0.1:0", {&lone});
  REQUIRE(lone_server.ok());
  auto lone_stub = v1::Query::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", lone_server->port), grpc::InsecureChannelCredentials()));

  const std::vector<std::vector<std::string>> layouts = {
      {a_addr, b_addr, a_addr, b_addr},  // interleaved: four runs
      {b_addr, b_addr, a_addr, a_addr},
      {a_addr, a_addr, a_addr, a_addr},
      {b_addr, b_addr, b_addr, b_addr},
  };
  std::vector<v1::ListPatientsRequest> requests(4);
  requests[1].set_activated(true);
  requests[2].set_stage(v1::ChurnView::ACTIVE);
  requests[3].set_min_churn_risk(0.5);
  requests[3].mutable_as_of()->set_seconds(1767225600 - 20 * 86400);

  SECTION("every page of every query, through either instance") {
    for (v1::ListPatientsRequest request : requests) {
      request.set_page_size(1000);
      const std::vector<std::string> want = AllPages(lone_stub.get(), request);
      REQUIRE(!want.empty());
      const std::multiset<std::string> want_set(want.begin(), want.end());
      for (int page_size : {7, 50}) {
        request.set_page_size(page_size);
        for (const auto& layout : layouts) {
          owners.Set(layout);
          for (Instance* via : {a.get(), b.get()}) {
            INFO("query " << request.ShortDebugString() << " via " << via->router->self()
                          << " owners " << absl::StrJoin(layout, ","));
            std::set<std::string> answered;
            const std::vector<std::string> got =
                AllPages(via->stub.get(), request, nullptr, &answered);
            CHECK(std::multiset<std::string>(got.begin(), got.end()) == want_set);
            CHECK(answered == std::set<std::string>(layout.begin(), layout.end()));
          }
        }
        // Ownership moving between pages: the walk goes on with whoever owns the partition.
        owners.Set(layouts[0]);
        int moves = 0;
        const std::vector<std::string> got = AllPages(a->stub.get(), request, [&](int page) {
          owners.Set(layouts[static_cast<size_t>(page + 1) % layouts.size()]);
          ++moves;
        });
        CHECK(std::multiset<std::string>(got.begin(), got.end()) == want_set);
        if (page_size == 7) CHECK(moves > 4);
      }
    }
  }

  SECTION("each instance reads only the partitions it owns") {
    // Each copy loses the partitions its instance does not own: a read of the wrong copy would
    // miss their patients.
    owners.Set(layouts[0]);  // a: 0 and 2, b: 1 and 3
    for (int32_t p : {1, 3}) REQUIRE(a->storage->DropPartition(p).ok());
    for (int32_t p : {0, 2}) REQUIRE(b->storage->DropPartition(p).ok());
    for (v1::ListPatientsRequest request : requests) {
      request.set_page_size(1000);
      const std::vector<std::string> want = AllPages(lone_stub.get(), request);
      request.set_page_size(11);
      for (Instance* via : {a.get(), b.get()}) {
        const std::vector<std::string> got = AllPages(via->stub.get(), request);
        CHECK(std::multiset<std::string>(got.begin(), got.end()) ==
              std::multiset<std::string>(want.begin(), want.end()));
      }
    }
    grpc::ClientContext lone_context;
    v1::CohortStatsResponse want;
    REQUIRE(lone_stub->CohortStats(&lone_context, v1::CohortStatsRequest(), &want).ok());
    for (Instance* via : {a.get(), b.get()}) {
      grpc::ClientContext context;
      v1::CohortStatsResponse got;
      REQUIRE(via->stub->CohortStats(&context, v1::CohortStatsRequest(), &got).ok());
      CHECK(got.stats().patients() == want.stats().patients());
      CHECK(got.stats().first_order_conversion() == Approx(want.stats().first_order_conversion()));
    }
  }

  SECTION("a page that ends where a run ends goes on at the next partition") {
    // Partition 0 alone is a's first run: a page exactly its size ends there.
    owners.Set(layouts[0]);
    v1::ListPatientsRequest request;
    request.set_page_size(1000);
    size_t in_zero = 0;
    for (const std::string& id : AllPages(lone_stub.get(), request)) {
      in_zero += KafkaPartition(id, kPartitions) == 0;
    }
    REQUIRE(in_zero > 0);
    request.set_page_size(static_cast<int>(in_zero));
    const Page first = ListPage(a->stub.get(), request);
    REQUIRE(first.status.ok());
    CHECK(static_cast<size_t>(first.response.patients_size()) == in_zero);
    for (const auto& view : first.response.patients()) {
      CHECK(KafkaPartition(view.patient_id(), kPartitions) == 0);
    }
    v1::ListPatientsRequest next = request;
    next.set_page_token(first.response.next_page_token());
    auto partition = ListPatientsTokenPartition(next);
    REQUIRE(partition.ok());
    CHECK(*partition == 1);
    const Page second = ListPage(b->stub.get(), next);
    REQUIRE(second.status.ok());
    REQUIRE(second.response.patients_size() > 0);
    CHECK(KafkaPartition(second.response.patients(0).patient_id(), kPartitions) == 1);
  }

  SECTION("a partition without an owner: UNAVAILABLE with a retry hint, then on from there") {
    owners.Set(layouts[0]);
    v1::ListPatientsRequest request;
    request.set_page_size(20);
    const std::vector<std::string> want = AllPages(lone_stub.get(), request);
    std::vector<std::string> got;
    int refused = 0;
    for (int pages = 0;; ++pages) {
      REQUIRE(pages < 1000);
      // Partition 2 loses its owner after the first page, and has it back after a refusal.
      if (pages == 1) owners.Set({a_addr, b_addr, "", b_addr});
      Page page = ListPage(b->stub.get(), request);
      if (!page.status.ok()) {
        CHECK(page.status.error_code() == grpc::StatusCode::UNAVAILABLE);
        CHECK(page.status.error_message().find("retry") != std::string::npos);
        CHECK(page.trailers.count(kRetryPushbackMetadata) == 1);
        ++refused;
        owners.Set(layouts[1]);
        continue;  // the same token again
      }
      for (const auto& view : page.response.patients()) got.push_back(view.patient_id());
      if (page.response.next_page_token().empty()) break;
      request.set_page_token(page.response.next_page_token());
    }
    CHECK(refused == 1);
    CHECK(std::multiset<std::string>(got.begin(), got.end()) ==
          std::multiset<std::string>(want.begin(), want.end()));

    // CohortStats too: the whole is needed.
    owners.Set({a_addr, "", b_addr, b_addr});
    grpc::ClientContext context;
    v1::CohortStatsResponse stats;
    const grpc::Status s = a->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  }

  SECTION("a part that answers for other partitions than asked is refused, not gathered") {
    LyingPeer liar;
    auto liar_server = StartGrpcServer("127.0.0.1:0", {&liar});
    REQUIRE(liar_server.ok());
    const std::string liar_addr = absl::StrCat("127.0.0.1:", liar_server->port);
    owners.Set({a_addr, a_addr, liar_addr, liar_addr});
    const std::string why =
        "the part from " + liar_addr + " answers for partitions [0], not the [2,3] asked of it";
    grpc::ClientContext context;
    v1::CohortStatsResponse stats;
    const grpc::Status s = a->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
    CHECK(s.error_code() == grpc::StatusCode::INTERNAL);
    CHECK(s.error_message() == why);
    v1::ListPatientsRequest request;
    request.set_page_size(1000);  // past partitions 0 and 1's patients, into the liar's
    const Page page = ListPage(a->stub.get(), request);
    CHECK(page.status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK(page.status.error_message() == why);
    liar_server->server->Shutdown();
  }

  SECTION("a gathered page examines at most one page's bound in all, however many runs") {
    // A part given a bound stops at it, with a token to go on.
    owners.Set(layouts[0]);
    auto peer = v1::Peer::NewStub(grpc::CreateChannel(a_addr, grpc::InsecureChannelCredentials()));
    {
      grpc::ClientContext context;
      v1::ListPartRequest request;
      request.mutable_request()->set_page_size(1000);
      request.add_partitions(0);
      request.set_max_examined(5);
      v1::ListPartResponse response;
      const grpc::Status s = peer->ListPart(&context, request, &response);
      INFO(s.error_message());
      REQUIRE(s.ok());
      CHECK(response.examined() == 5);
      CHECK(response.response().patients_size() <= 5);
      CHECK(!response.response().next_page_token().empty());
      request.set_max_examined(-1);
      grpc::ClientContext negative;
      CHECK(peer->ListPart(&negative, request, &response).error_code() ==
            grpc::StatusCode::INVALID_ARGUMENT);
    }
    // A run whose part used up the page's bound ends the page there: the next run is read on
    // the next page, not on this one with a bound of its own.
    GreedyPeer greedy;
    auto greedy_server = StartGrpcServer("127.0.0.1:0", {&greedy});
    REQUIRE(greedy_server.ok());
    const std::string greedy_addr = absl::StrCat("127.0.0.1:", greedy_server->port);
    owners.Set({a_addr, greedy_addr, a_addr, a_addr});
    v1::ListPatientsRequest request;
    request.set_page_size(1000);
    const Page page = ListPage(a->stub.get(), request);
    INFO(page.status.error_message());
    REQUIRE(page.status.ok());
    REQUIRE(page.response.patients_size() > 0);
    for (const auto& view : page.response.patients()) {
      CHECK(KafkaPartition(view.patient_id(), kPartitions) == 0);
    }
    v1::ListPatientsRequest next = request;
    next.set_page_token(page.response.next_page_token());
    auto partition = ListPatientsTokenPartition(next);
    REQUIRE(partition.ok());
    CHECK(*partition == 2);
    const int64_t examined = std::stoll(page.trailers.at(kCandidatesExaminedMetadata));
    const int64_t in_zero = examined - GreedyPeer::kExamined;
    CHECK(in_zero >= page.response.patients_size());
    // The greedy part was given what partition 0's run left of the page's bound.
    const std::vector<v1::ListPartRequest> asked = greedy.asked();
    REQUIRE(asked.size() == 1);
    CHECK(asked[0].max_examined() == ListPatientsMaxExamined(1000) - in_zero);
    greedy_server->server->Shutdown();
  }

  SECTION("cohort reads share one bound per instance: a peer's part beyond it is refused") {
    owners.Set(layouts[0]);
    std::vector<std::optional<FullScans::Slot>> held;
    for (int i = 0; i < FullScans::kDefaultMax; ++i) held.push_back(a->scans->TryTake());
    REQUIRE(held.back().has_value());
    for (Instance* via : {a.get(), b.get()}) {
      grpc::ClientContext context;
      v1::CohortStatsResponse stats;
      const grpc::Status s = via->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
      INFO(s.error_message());
      CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
      CHECK(s.error_message().find("--max-cohort-scans") != std::string::npos);
      // Through b: a's part was refused, and the answer says whose bound it was.
      if (via == b.get()) CHECK(s.error_message().rfind(a_addr + ": ", 0) == 0);
      CHECK(context.GetServerTrailingMetadata().count(kRetryPushbackMetadata) == 1);
    }
    CHECK(a->scans->refused() == 2);
    CHECK(b->scans->running() == 0);  // b's own slot, taken for the gather, is back
    // A RESOURCE_EXHAUSTED without the peer's hint is passed on without one: a retry would not
    // help.
    ExhaustedPeer exhausted;
    auto exhausted_server = StartGrpcServer("127.0.0.1:0", {&exhausted});
    REQUIRE(exhausted_server.ok());
    const std::string exhausted_addr = absl::StrCat("127.0.0.1:", exhausted_server->port);
    owners.Set({b_addr, exhausted_addr, b_addr, b_addr});
    {
      grpc::ClientContext context;
      v1::CohortStatsResponse stats;
      const grpc::Status s = b->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
      CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
      CHECK(s.error_message() == exhausted_addr + ": message larger than max");
      CHECK(context.GetServerTrailingMetadata().count(kRetryPushbackMetadata) == 0);
    }
    exhausted_server->server->Shutdown();
    owners.Set(layouts[0]);
    held.clear();
    grpc::ClientContext context;
    v1::CohortStatsResponse stats;
    CHECK(b->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats).ok());
  }

  SECTION("CohortStats from both owners' parts") {
    for (const bool fixed : {false, true}) {
      v1::CohortStatsRequest request;
      if (fixed) request.mutable_as_of()->set_seconds(1767225600 - 30 * 86400);
      grpc::ClientContext lone_context;
      v1::CohortStatsResponse want;
      REQUIRE(lone_stub->CohortStats(&lone_context, request, &want).ok());
      REQUIRE(want.stats().patients() >= 300);
      // The uplift travels in the parts too: every patient first seen by the as-of in one arm
      // of the holdout.
      REQUIRE(want.stats().uplift_size() == 2);
      const int64_t assigned =
          want.stats().uplift(0).arms(0).count() + want.stats().uplift(0).arms(1).count();
      CHECK((fixed ? assigned < want.stats().patients() : assigned == want.stats().patients()));
      CHECK(assigned > 100);
      CHECK(want.stats().uplift(1).comparisons_size() == 8);
      for (const auto& layout : layouts) {
        owners.Set(layout);
        for (Instance* via : {a.get(), b.get()}) {
          grpc::ClientContext context;
          v1::CohortStatsResponse got;
          const grpc::Status s = via->stub->CohortStats(&context, request, &got);
          INFO(s.error_message());
          REQUIRE(s.ok());
          // Sums added in another order: the means and the intervals from them agree to ~1e-12.
          google::protobuf::util::DefaultFieldComparator close;
          close.set_float_comparison(google::protobuf::util::DefaultFieldComparator::APPROXIMATE);
          close.SetDefaultFractionAndMargin(1e-9, 1e-12);
          google::protobuf::util::MessageDifferencer diff;
          diff.set_field_comparator(&close);
          std::string report;
          diff.ReportDifferencesToString(&report);
          const bool same = diff.Compare(got.stats(), want.stats());
          INFO(report);
          CHECK(same);
          auto offsets = context.GetServerTrailingMetadata().find(kPartitionOffsetsMetadata);
          REQUIRE(offsets != context.GetServerTrailingMetadata().end());
          CHECK(std::string(offsets->second.data(), offsets->second.size()) ==
                "0:1000,1:1001,2:1002,3:1003");
        }
      }
    }
  }

  SECTION("the caller's token reaches every owner, and a part needs one") {
    auto call = [&](const std::string& token, v1::CohortStatsResponse* response) {
      grpc::ClientContext context;
      if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
      return a2->stub->CohortStats(&context, v1::CohortStatsRequest(), response);
    };
    v1::CohortStatsResponse stats;
    CHECK(call("", &stats).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(call(std::string(40, 'i'), &stats).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
    const grpc::Status ok = call(std::string(40, 'q'), &stats);
    INFO(ok.error_message());
    CHECK(ok.ok());
    CHECK(stats.stats().patients() >= 300);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + std::string(40, 'q'));
    v1::ListPatientsRequest request;
    request.set_page_size(1000);
    v1::ListPatientsResponse page;
    CHECK(a2->stub->ListPatients(&context, request, &page).ok());
    CHECK(page.patients_size() >= 300);
    // The Peer service itself, called without a token.
    auto peer = v1::Peer::NewStub(grpc::CreateChannel(b2_addr, grpc::InsecureChannelCredentials()));
    grpc::ClientContext bare;
    v1::CohortPartRequest part;
    part.add_partitions(1);
    v1::CohortPartResponse response;
    CHECK(peer->CohortPart(&bare, part, &response).error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  }

  SECTION("hostile part requests and tokens are refused") {
    owners.Set(layouts[0]);
    auto peer = v1::Peer::NewStub(grpc::CreateChannel(a_addr, grpc::InsecureChannelCredentials()));
    for (const std::vector<int32_t>& partitions :
         std::vector<std::vector<int32_t>>{{2, 0}, {0, 0}, {-1}, {kPartitions}, {1}}) {
      grpc::ClientContext context;
      v1::CohortPartRequest request;
      for (int32_t p : partitions) request.add_partitions(p);
      v1::CohortPartResponse response;
      const grpc::Status s = peer->CohortPart(&context, request, &response);
      INFO(absl::StrJoin(partitions, ",") << ": " << s.error_message());
      // Partition 1 is b's: a does not answer for it.
      CHECK(s.error_code() == (partitions == std::vector<int32_t>{1}
                                   ? grpc::StatusCode::UNAVAILABLE
                                   : grpc::StatusCode::INVALID_ARGUMENT));
    }
    // ListPart alike: a malformed list, and a partition the callee does not own.
    for (const std::vector<int32_t>& partitions :
         std::vector<std::vector<int32_t>>{{3, 1}, {kPartitions + 7}, {1}}) {
      grpc::ClientContext context;
      v1::ListPartRequest request;
      for (int32_t p : partitions) request.add_partitions(p);
      v1::ListPartResponse response;
      const grpc::Status s = peer->ListPart(&context, request, &response);
      CHECK(s.error_code() == (partitions == std::vector<int32_t>{1}
                                   ? grpc::StatusCode::UNAVAILABLE
                                   : grpc::StatusCode::INVALID_ARGUMENT));
      CHECK(response.response().patients_size() == 0);
    }
    // A partition that moves away while its part is read: the part is refused, not sent.
    for (const bool list : {false, true}) {
      owners.Set(layouts[0]);
      {
        absl::MutexLock lock(&owners.mu);
        owners.flip_after = 2;  // a's two partitions checked before the read, then gone
        owners.then = {"", b_addr, "", b_addr};
      }
      grpc::ClientContext context;
      grpc::Status s;
      if (list) {
        v1::ListPartRequest request;
        request.add_partitions(0);
        request.add_partitions(2);
        v1::ListPartResponse response;
        s = peer->ListPart(&context, request, &response);
      } else {
        v1::CohortPartRequest request;
        request.add_partitions(0);
        request.add_partitions(2);
        v1::CohortPartResponse response;
        s = peer->CohortPart(&context, request, &response);
      }
      INFO((list ? "ListPart: " : "CohortPart: ") << s.error_message());
      CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
      CHECK(s.error_message().find("moving") != std::string::npos);
    }
    owners.Set(layouts[0]);
    v1::ListPatientsRequest request;
    // A token of this query that names a partition the deployment does not have.
    request.set_page_token(ListPatientsTokenAt(request, kPartitions + 3));
    const Page beyond = ListPage(a->stub.get(), request);
    CHECK(beyond.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(beyond.status.error_message().find("page_token") != std::string::npos);
    request.set_page_token("bm90LWEtdG9rZW4");
    CHECK(ListPage(a->stub.get(), request).status.error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    request.set_page_token("");
    request.set_page_size(5000);
    const Page big = ListPage(a->stub.get(), request);
    CHECK(big.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(big.status.error_message().find("page_size") != std::string::npos);
    // A token of another query (other filters) is refused too.
    request.set_page_size(5);
    const Page first = ListPage(a->stub.get(), request);
    REQUIRE(!first.response.next_page_token().empty());
    request.set_activated(true);
    request.set_page_token(first.response.next_page_token());
    CHECK(ListPage(b->stub.get(), request).status.error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_CASE("a gathered CohortStats whose caller cancels stops the peers' reads too",
          "[integration]") {
  testing::TempDir dir;
  EngineOptions options;
  options.commit_max_records = 5000;
  testing::FoldThroughKafka(testing::Cohort(200, 120, 29), dir.Sub("a"), options);
  testing::CopyPatients(dir.Sub("a"), 150);  // ~30k patients: reads of a good part of a second
  std::filesystem::copy(dir.Sub("a"), dir.Sub("b"), std::filesystem::copy_options::recursive);
  Owners owners;
  const int a_port = testing::FreePort(), b_port = testing::FreePort();
  const std::string a_addr = absl::StrCat("127.0.0.1:", a_port);
  const std::string b_addr = absl::StrCat("127.0.0.1:", b_port);
  owners.Set({a_addr, b_addr, a_addr, b_addr});
  auto a = StartInstance(dir.Sub("a"), a_port, &owners);
  auto b = StartInstance(dir.Sub("b"), b_port, &owners);

  grpc::ClientContext context;
  grpc::Status status;
  std::thread call([&] {
    v1::CohortStatsResponse stats;
    status = a->stub->CohortStats(&context, v1::CohortStatsRequest(), &stats);
  });
  // Cancel once b reads its part.
  REQUIRE(testing::WaitUntil([&] { return b->scans->running() > 0; }, absl::Seconds(10)));
  REQUIRE(b->scans->running() == 1);
  context.TryCancel();
  call.join();
  CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
  testing::WaitUntil([&] { return a->scans->running() == 0 && b->scans->running() == 0; },
                     absl::Seconds(10));
  CHECK(a->scans->running() == 0);
  CHECK(b->scans->running() == 0);
  // Both reads stopped at a check: b's because a cancelled its part when its own caller went.
  CHECK(a->scans->stopped() == 1);
  CHECK(b->scans->stopped() == 1);

  // A part refused (a at its bound): b's answer is decided, and b's own read stops too instead
  // of reading on for an answer nobody gets.
  std::vector<std::optional<FullScans::Slot>> held;
  for (int i = 0; i < FullScans::kDefaultMax; ++i) held.push_back(a->scans->TryTake());
  REQUIRE(held.back().has_value());
  grpc::ClientContext refused;
  v1::CohortStatsResponse none;
  const grpc::Status s = b->stub->CohortStats(&refused, v1::CohortStatsRequest(), &none);
  INFO(s.error_message());
  CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(s.error_message().rfind(a_addr + ": ", 0) == 0);
  CHECK(b->scans->stopped() == 2);
  CHECK(b->scans->running() == 0);
}

}  // namespace
}  // namespace tend
