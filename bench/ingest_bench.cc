// tend bench --ingest: events/s through Ingest/Append (one event per call) against
// Ingest/AppendBatch (--batch events per call) at the same client concurrency, over real gRPC on
// loopback to an IngestService producing to the dev broker in this process. Alternating rounds;
// the medians are compared.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "base/time.h"
#include "bench/bench.h"
#include "dev/mock_broker.h"
#include "kafka/kafka.h"
#include "services/ingest_service.h"
#include "services/server.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {
namespace {

v1::Event CheckIn(int client, int64_t n) {
  v1::Event e;
  e.set_event_id(absl::StrCat("bench-", client, "-", n));
  e.set_patient_id(absl::StrCat("p", (client * 7919 + n) % 10'000));
  *e.mutable_occurred_at() = ToProtoTime(absl::Now() - absl::Minutes(1));
  e.mutable_check_in()->set_kind(v1::CheckIn::TRAINING);
  return e;
}

// Events acknowledged per second by `clients` callers for `duration`, each one event per call
// (batch 0) or `batch` per call.
absl::StatusOr<double> Round(const std::string& target, int clients, int batch,
                             absl::Duration duration) {
  std::atomic<int64_t> acknowledged{0}, failed{0};
  const absl::Time end = absl::Now() + duration;
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
      auto stub = v1::Ingest::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
      for (int64_t n = 0; absl::Now() < end;) {
        grpc::ClientContext ctx;
        if (batch == 0) {
          v1::AppendRequest request;
          *request.mutable_event() = CheckIn(c, n++);
          v1::AppendResponse response;
          if (stub->Append(&ctx, request, &response).ok()) {
            acknowledged.fetch_add(1);
          } else {
            failed.fetch_add(1);
          }
          continue;
        }
        v1::AppendBatchRequest request;
        for (int i = 0; i < batch; ++i) *request.add_events() = CheckIn(c, n++);
        v1::AppendBatchResponse response;
        if (!stub->AppendBatch(&ctx, request, &response).ok()) {
          failed.fetch_add(batch);
          continue;
        }
        for (const auto& r : response.results()) (r.code() == 0 ? acknowledged : failed).fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (failed.load() > 0) {
    return absl::InternalError(absl::StrCat(failed.load(), " events were not appended"));
  }
  return static_cast<double>(acknowledged.load()) / seconds;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

absl::Status RunIngestBench(const IngestBenchOptions& options, std::ostream& out) {
  MockBrokerOptions broker_options;
  broker_options.partitions = options.partitions;
  TEND_ASSIGN_OR_RETURN(auto broker, MockBroker::Start(broker_options));
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create({{"bootstrap.servers", broker->bootstrap()},
                                                         {"linger.ms", "1"}}));
  IngestService ingest(producer.get(), broker_options.topic);
  TEND_ASSIGN_OR_RETURN(RunningServer server, StartGrpcServer("127.0.0.1:0", {&ingest}));
  const std::string target = absl::StrCat("127.0.0.1:", server.port);
  std::vector<double> single, batched;
  for (int round = 0; round < options.repeat; ++round) {
    // Alternating which goes first, so neither always runs on a warmer broker.
    for (int i = 0; i < 2; ++i) {
      const bool batch_now = (round + i) % 2 == 1;
      TEND_ASSIGN_OR_RETURN(const double eps, Round(target, options.clients,
                                                    batch_now ? options.batch : 0,
                                                    options.duration));
      (batch_now ? batched : single).push_back(eps);
      std::cerr << (batch_now ? "AppendBatch" : "Append") << " round " << round + 1 << ": "
                << static_cast<int64_t>(eps) << " events/s" << std::endl;
    }
  }
  server.server->Shutdown();
  const double append = Median(single), append_batch = Median(batched);
  out << absl::StrFormat(
             "{\"clients\":%d,\"batch\":%d,\"seconds\":%.0f,\"repeat\":%d,\"append_eps\":%.0f,"
             "\"append_batch_eps\":%.0f,\"batch_ratio\":%.1f}",
             options.clients, options.batch, absl::ToDoubleSeconds(options.duration),
             options.repeat, append, append_batch, append > 0 ? append_batch / append : 0)
      << std::endl;
  return absl::OkStatus();
}

}  // namespace tend
