// Starts the gRPC server hosting tend's services, with server reflection (for grpcurl).
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

// `services` are borrowed and must outlive the server. kUnavailable when the address can't be
// bound.
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen_address,
                                              const std::vector<grpc::Service*>& services);

}  // namespace tend

#endif  // TEND_SERVICES_SERVER_H_
