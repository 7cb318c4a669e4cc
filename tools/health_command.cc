// tend health: asks a server's standard gRPC health service (observe/health.h CheckHealth), for
// probes that cannot speak gRPC themselves (a container's HEALTHCHECK, a script).
#include <iostream>

#include "absl/time/time.h"
#include "observe/health.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddHealthCommand(CLI::App* app) {
  struct Flags {
    std::string target, service;
    double timeout_s = 5;
    ClientSecurity security;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "health", "Ask a tend server's gRPC health service; exit 0 when SERVING, 1 otherwise.");
  cmd->add_option("--grpc", f->target, "the server, host:port")->required();
  cmd->add_option("--service", f->service,
                  "one service (e.g. tend.v1.Query); default: the server as a whole");
  cmd->add_option("--timeout-s", f->timeout_s)->capture_default_str()->check(CLI::Range(0.1, 600.0));
  AddClientSecurityFlags(cmd, "--grpc", &f->security);
  return [f](const std::atomic<bool>&) {
    auto serving = CheckHealth(f->target, f->security, f->service, absl::Seconds(f->timeout_s));
    if (!serving.ok()) return Exit(serving.status(), "health");
    std::cout << (*serving ? "SERVING" : "NOT_SERVING") << std::endl;
    return *serving ? 0 : 1;
  };
}

}  // namespace tend
