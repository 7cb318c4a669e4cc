// tend bench --query: Query/GetPatient over real gRPC (loopback) against a state folded from a
// simulated cohort, against the same lookups made in process by one thread; then
// Query/ListPatients paged to the end for a few filters, against walking every patient; then
// CohortStats and a ListPatients walk from a lone engine against the same gathered from two
// instances.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <iostream>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "base/status.h"
#include "base/time.h"
#include "base/temp_dir.h"
#include "bench/bench.h"
#include "bench/memory_log.h"
#include "dev/simulate.h"
#include "engine/engine.h"
#include "index/planner.h"
#include "projections/patient.h"
#include "services/peer_service.h"
#include "services/query_router.h"
#include "services/query_service.h"
#include "services/server.h"
#include "storage/storage.h"
#include "storage/views.h"

namespace tend {

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

// Two instances answering for half the partitions each (even and odd), over real gRPC on
// loopback: what several instances do (services/query_service.h), on one directory here so that
// the answers can be compared with a lone engine's.
class HalvesRouter final : public QueryRouter {
 public:
  HalvesRouter(int parity, int32_t partitions) : parity_(parity), partitions_(partitions) {}
  // Both addresses, once both servers listen (before any call).
  void SetAddresses(std::string self, std::string other) {
    absl::MutexLock lock(&mu_);
    self_ = std::move(self);
    other_ = std::move(other);
  }
  Route RouteOf(absl::string_view) const override { return Route(); }
  Route RouteOfPartition(int32_t partition) const override {
    absl::MutexLock lock(&mu_);
    Route r;
    r.partition = partition;
    r.kind = partition % 2 == parity_ ? Route::Kind::kHere : Route::Kind::kPeer;
    r.peer = other_;
    return r;
  }
  int32_t partitions() const override { return partitions_; }
  const std::string& self() const override { return self_; }  // set before any call
  absl::StatusOr<PeerStubs> Peer(const std::string& address) override {
    absl::MutexLock lock(&mu_);
    if (query_ == nullptr) {
      auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
      query_ = v1::Query::NewStub(channel);
      parts_ = v1::Peer::NewStub(channel);
    }
    return PeerStubs{query_.get(), parts_.get()};
  }

 private:
  const int parity_;
  const int32_t partitions_;
  mutable absl::Mutex mu_;
  std::string self_;
  std::string other_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<v1::Query::Stub> query_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<v1::Peer::Stub> parts_ ABSL_GUARDED_BY(mu_);
};

// CohortStats and an unfiltered ListPatients walk (pages of 1,000) from a lone engine against
// the same gathered from two instances (HalvesRouter), best of three each. One JSON line.
absl::Status BenchGathered(Storage* storage, const projections::ProjectionConfig& config,
                           int32_t partitions, int lone_port, std::ostream& out) {
  std::vector<std::shared_ptr<HalvesRouter>> routers;
  std::vector<std::unique_ptr<QueryService>> queries;
  std::vector<std::unique_ptr<PeerService>> peers;
  std::vector<RunningServer> servers;
  std::vector<std::string> addresses;
  for (int i = 0; i < 2; ++i) {
    routers.push_back(std::make_shared<HalvesRouter>(i, partitions));
    queries.push_back(std::make_unique<QueryService>(storage, config));
    queries.back()->set_router(routers.back());
    peers.push_back(std::make_unique<PeerService>(storage, config, routers.back()));
    TEND_ASSIGN_OR_RETURN(RunningServer server,
                          StartGrpcServer("127.0.0.1:0", {queries.back().get(), peers.back().get()}));
    addresses.push_back(absl::StrCat("127.0.0.1:", server.port));
    servers.push_back(std::move(server));
  }
  routers[0]->SetAddresses(addresses[0], addresses[1]);
  routers[1]->SetAddresses(addresses[1], addresses[0]);
  auto stub_of = [](const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    return v1::Query::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  };
  auto lone = stub_of(absl::StrCat("127.0.0.1:", lone_port));
  auto gathered = stub_of(addresses[0]);
  // The best of three of `call`, which returns what it counted.
  auto best = [](const std::function<absl::StatusOr<int64_t>()>& call,
                 int64_t* counted) -> absl::StatusOr<double> {
    double fastest = 0;
    for (int round = 0; round < 3; ++round) {
      const absl::Time start = absl::Now();
      TEND_ASSIGN_OR_RETURN(*counted, call());
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      fastest = round == 0 ? seconds : std::min(fastest, seconds);
    }
    return fastest;
  };
  auto cohort = [](v1::Query::Stub* stub) -> absl::StatusOr<int64_t> {
    grpc::ClientContext ctx;
    v1::CohortStatsResponse response;
    grpc::Status s = stub->CohortStats(&ctx, v1::CohortStatsRequest(), &response);
    if (!s.ok()) return absl::InternalError(absl::StrCat("CohortStats: ", s.error_message()));
    return response.stats().patients();
  };
  auto list = [](v1::Query::Stub* stub) -> absl::StatusOr<int64_t> {
    v1::ListPatientsRequest request;
    request.set_page_size(1000);
    int64_t n = 0;
    for (;;) {
      grpc::ClientContext ctx;
      v1::ListPatientsResponse response;
      grpc::Status s = stub->ListPatients(&ctx, request, &response);
      if (!s.ok()) return absl::InternalError(absl::StrCat("ListPatients: ", s.error_message()));
      n += response.patients_size();
      if (response.next_page_token().empty()) return n;
      request.set_page_token(response.next_page_token());
    }
  };
  int64_t lone_n = 0, gathered_n = 0;
  TEND_ASSIGN_OR_RETURN(const double cohort_lone, best([&] { return cohort(lone.get()); }, &lone_n));
  TEND_ASSIGN_OR_RETURN(const double cohort_gathered,
                        best([&] { return cohort(gathered.get()); }, &gathered_n));
  if (lone_n != gathered_n) {
    return absl::InternalError(absl::StrCat("CohortStats gathered ", gathered_n,
                                            " patients, the lone engine ", lone_n));
  }
  TEND_ASSIGN_OR_RETURN(const double list_lone, best([&] { return list(lone.get()); }, &lone_n));
  TEND_ASSIGN_OR_RETURN(const double list_gathered,
                        best([&] { return list(gathered.get()); }, &gathered_n));
  if (lone_n != gathered_n) {
    return absl::InternalError(absl::StrCat("ListPatients gathered ", gathered_n,
                                            " patients, the lone engine ", lone_n));
  }
  for (auto& server : servers) server.server->Shutdown();
  out << absl::StrFormat(
             "{\"gathered\":\"2 instances, alternate partitions\",\"patients\":%d,"
             "\"cohort_stats_lone_s\":%.3f,\"cohort_stats_gathered_s\":%.3f,"
             "\"list_all_lone_s\":%.3f,\"list_all_gathered_s\":%.3f}",
             lone_n, cohort_lone, cohort_gathered, list_lone, list_gathered)
      << std::endl;
  return absl::OkStatus();
}

absl::Status RunQueryBench(const QueryBenchOptions& options, std::ostream& out) {
  constexpr int kPartitions = 8;
  CohortOptions cohort;
  cohort.patients = options.patients;
  cohort.days = options.days > 0 ? options.days : 3650;
  cohort.seed = options.seed;
  cohort.initial_share = options.days > 0 ? cohort.initial_share : 1.0;
  TEND_ASSIGN_OR_RETURN(
      const MemoryLog log,
      SimulateToMemory(cohort, kPartitions, options.days == 0 ? options.events : 0));
  const std::vector<std::string>& patients = log.patients;
  std::cerr << "folding " << log.records.size() << " records of " << patients.size()
            << " patients..." << std::endl;
  TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-bench-query-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
  {
    EngineOptions engine_options;
    engine_options.mode = EngineOptions::Mode::kReplay;
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    MemorySource source(&log);
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
  TEND_RETURN_IF_ERROR(BenchGathered(storage.get(), config, kPartitions, server.port, out));
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
