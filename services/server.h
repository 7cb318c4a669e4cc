// Starts the gRPC server hosting tend's services: plaintext or TLS credentials from
// auth/auth.h MakeServerAuth, and server reflection (for grpcurl) only when asked for.
#ifndef TEND_SERVICES_SERVER_H_
#define TEND_SERVICES_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tend {

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful with "127.0.0.1:0")
};

struct ServerOptions {
  // Null: plaintext (tests and tools on loopback; MakeServerAuth decides for operators).
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool reflection = false;  // the reflection service has no token check: off by default
};

// `services` are borrowed and must outlive the server. kUnavailable when the address can't be
// bound (or, with TLS, when the certificate and key do not load).
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen_address,
                                              const std::vector<grpc::Service*>& services,
                                              const ServerOptions& options = {});

}  // namespace tend

#endif  // TEND_SERVICES_SERVER_H_
