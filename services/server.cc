#include "services/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tend {
namespace {

// Linking gRPC's reflection library registers its plugin with every server builder (a static
// initializer in the shared library): this option takes it out again.
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return dynamic_cast<grpc::reflection::ProtoServerReflectionPlugin*>(
                                               p.get()) != nullptr;
                                  }),
                   plugins->end());
  }
};

}  // namespace

absl::StatusOr<RunningServer> StartGrpcServer(const std::string& listen_address,
                                              const std::vector<grpc::Service*>& services,
                                              const ServerOptions& options) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // idempotent
  grpc::ServerBuilder builder;
  if (!options.reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  RunningServer running;
  builder.AddListeningPort(listen_address,
                           options.credentials ? options.credentials
                                               : grpc::InsecureServerCredentials(),
                           &running.port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  grpc::ResourceQuota quota("tend-grpc");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  if (options.metrics != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(options.metrics->InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  // gRPC's own grpc.health.v1.Health (a process-wide switch, read when a server is built). It
  // starts with "" SERVING; set NOT_SERVING below, right after the start (a check in between
  // could still see SERVING: docs/design.md, "Observability").
  grpc::EnableDefaultHealthCheckService(true);
  running.health_services = options.health_services;
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || running.port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen for gRPC on ", listen_address,
        options.credentials ? " (address in use, or the TLS certificate and key do not load?)"
                            : " (address in use?)"));
  }
  running.SetServing(false);
  if (grpc::HealthCheckServiceInterface* health = running.server->GetHealthCheckService()) {
    for (const std::string& s : options.serving_services) health->SetServingStatus(s, true);
  }
  return running;
}

void RunningServer::SetServing(bool serving) const {
  grpc::HealthCheckServiceInterface* health =
      server ? server->GetHealthCheckService() : nullptr;
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  for (const std::string& s : health_services) health->SetServingStatus(s, serving);
}

}  // namespace tend
