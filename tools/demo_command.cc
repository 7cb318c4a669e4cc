// tend demo: broker, simulated cohort, engine, dispatcher, sink and gRPC in one process
// (dev/demo.h).
#include <iostream>

#include "dev/demo.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddDemoCommand(CLI::App* app) {
  auto demo = std::make_shared<DemoOptions>();
  auto* cmd = app->add_subcommand("demo", "Broker, simulated cohort, engine and gRPC in one "
                                          "process; prints a summary.");
  cmd->add_option("--patients", demo->patients)->capture_default_str();
  cmd->add_option("--days", demo->days)->capture_default_str();
  cmd->add_option("--grpc-listen", demo->grpc_listen)->capture_default_str();
  cmd->add_flag("--serve", demo->serve, "keep running (Ctrl-C stops) for grpcurl");
  cmd->add_option("--metrics-listen", demo->metrics_listen,
                  "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464");
  cmd->add_option("--rules", demo->rules_path,
                  "rules deciding reminders, delivered to the reference sink (\"\": none)")
      ->capture_default_str();
  return [demo](const std::atomic<bool>& stop) {
    return Exit(RunDemo(*demo, stop, std::cout), "demo");
  };
}

}  // namespace tend
