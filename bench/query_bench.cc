// tend bench --query: Query/GetPatient over real gRPC (loopback) against a state folded from a
// simulated cohort, against the same lookups made in process by one thread; then
// Query/ListPatients paged to the end for a few filters, against walking every patient.
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
#include "base/status.h"
#include "base/time.h"
#include "base/temp_dir.h"
#include "bench/bench.h"
#include "bench/memory_log.h"
#include "dev/simulate.h"
#include "engine/engine.h"
#include "index/planner.h"
#include "projections/patient.h"
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
