// Starts the gRPC server hosting tend's services: plaintext or TLS credentials from
// auth/auth.h MakeServerAuth, server reflection (for grpcurl) only when asked for, the standard
// health service (grpc.health.v1.Health: gRPC's own implementation, Check and Watch) and the
// per-method call metrics (services/grpc_metrics.h).
#ifndef TEND_SERVICES_SERVER_H_
#define TEND_SERVICES_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/grpc_metrics.h"

namespace tend {

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful with "127.0.0.1:0")
  std::vector<std::string> health_services;  // ServerOptions::health_services

  // The health service's answer for the whole server ("") and each of health_services:
  // SERVING or NOT_SERVING (ServerOptions::serving_services keep theirs). Thread-safe. After
  // Shutdown() gRPC answers NOT_SERVING whatever was set.
  void SetServing(bool serving) const;
};

struct ServerOptions {
  // Null: plaintext (tests and tools on loopback; MakeServerAuth decides for operators).
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool reflection = false;  // the reflection service has no token check: off by default
  // Borrowed; must outlive the server. Null: no call metrics.
  GrpcMetrics* metrics = nullptr;
  // The services the health service answers for besides the server as a whole (""), e.g.
  // "tend.v1.Query". The server starts NOT_SERVING for all: the caller says when it serves
  // (SetServing). (Health checks carry no token: they say nothing about patients.)
  std::vector<std::string> health_services;
  // Services SERVING for as long as the server runs, whatever SetServing says: those that need
  // nothing the caller waits for (the engine's Ingest needs Kafka, not the engine's state).
  std::vector<std::string> serving_services;
  // The most threads gRPC runs calls on at once (its ResourceQuota; its pollers count too). A
  // call beyond them is refused at once with RESOURCE_EXHAUSTED ("Server Threadpool
  // Exhausted"), where otherwise each call took a thread more without end: an Append waits for
  // the broker until shortly before its deadline, so a broker that stops acknowledging held a
  // thread per call (docs/design.md, "Hostile input").
  int max_threads = 256;
};

// `services` are borrowed and must outlive the server. kUnavailable when the address can't be
// bound (or, with TLS, when the certificate and key do not load).
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen_address,
                                              const std::vector<grpc::Service*>& services,
                                              const ServerOptions& options = {});

}  // namespace tend

#endif  // TEND_SERVICES_SERVER_H_
