// tend broker: the mock Kafka cluster for development (dev/mock_broker.h).
#include <iostream>

#include "dev/mock_broker.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddBrokerCommand(CLI::App* app) {
  auto broker = std::make_shared<MockBrokerOptions>();
  auto* cmd = app->add_subcommand(
      "broker", "In-memory Kafka-protocol broker for development (librdkafka mock cluster, "
                "~5 MiB kept per partition). Prints the bootstrap address first.");
  cmd->add_option("--partitions", broker->partitions, "partitions of the events topic")
      ->capture_default_str();
  cmd->add_option("--port", broker->port, "stable local port forwarded to the mock listener (0: none)")
      ->capture_default_str();
  cmd->add_option("--topic", broker->topic)->capture_default_str();
  return [broker](const std::atomic<bool>& stop) {
    return Exit(RunBroker(*broker, stop, std::cout), "broker");
  };
}

}  // namespace tend
