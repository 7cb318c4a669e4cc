#include "services/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include "absl/strings/str_cat.h"

namespace tend {

absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen_address,
                                              const std::vector<grpc::Service*>& services) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  RunningServer running;
  // Plaintext for development and in-cluster use; terminate TLS at the mesh or ingress (deploy/).
  builder.AddListeningPort(listen_address, grpc::InsecureServerCredentials(), &running.port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || running.port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", listen_address, " (address in use?)"));
  }
  return running;
}

}  // namespace tend
