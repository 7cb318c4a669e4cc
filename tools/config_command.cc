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
    auto config = LoadEngineConfig(*file);
    if (!config.ok()) return Exit(config.status(), "config");
    std::cout << FormatEngineConfig(*config);
    return 0;
  };
}

}  // namespace tend
