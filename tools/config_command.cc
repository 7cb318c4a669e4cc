// tend config: checks an engine config file and prints the effective config (config/).
#include <iostream>

#include "config/engine_config.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddConfigCommand(CLI::App* app) {
  auto file = std::make_shared<std::string>();
  auto* cmd = app->add_subcommand(
      "config", "Check an engine config file and print the effective config with every key "
                "(without FILE: the defaults).");
  cmd->add_option("FILE", *file, "engine config YAML");
  return [file](const std::atomic<bool>&) {
    ValidationOptions log;
    auto config = LoadEngineConfig(*file, &log);
    if (!config.ok()) return Exit(config.status(), "config");
    std::cout << FormatEngineConfig(*config, log);
    return 0;
  };
}

}  // namespace tend
