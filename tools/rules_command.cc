// tend rules: checks a rules file and lists its rules (rules/rules.h).
#include <iostream>

#include "rules/rules.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddRulesCommand(CLI::App* app) {
  auto file = std::make_shared<std::string>();
  auto* cmd = app->add_subcommand(
      "rules", "Check a rules file against the schemas and list its rules (one line each).");
  cmd->add_option("FILE", *file, "rules YAML (e.g. deploy/rules/default.yaml)")->required();
  return [file](const std::atomic<bool>&) {
    auto rules = RuleSet::Load(*file);
    if (!rules.ok()) return Exit(rules.status(), "rules");
    std::cout << DescribeRules(*rules);
    return 0;
  };
}

}  // namespace tend
