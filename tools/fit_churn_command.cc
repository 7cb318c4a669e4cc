// tend fit-churn: BG/NBD parameters fitted to the population (tools/commands.h FitChurn).
#include <iostream>

#include "tools/commands.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddFitChurnCommand(CLI::App* app) {
  struct Flags {
    FitChurnOptions fit;
    std::string as_of;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "fit-churn", "Fit BG/NBD churn parameters to the population (maximum likelihood); prints a "
                   "config snippet.");
  cmd->add_option("--db", f->fit.db_dir)->required();
  cmd->add_option("--config", f->fit.config_path,
                  "engine config YAML (default: the one the engine recorded in --db)");
  cmd->add_option("--as-of", f->as_of,
                  "RFC 3339 end of the calibration period (default: each partition's clock)");
  return [f](const std::atomic<bool>&) {
    if (absl::Status s = ParseOptionalTimeFlag("--as-of", f->as_of, &f->fit.as_of); !s.ok()) {
      return Exit(s, "fit-churn");
    }
    auto report = FitChurn(f->fit, std::cout, std::cerr);
    if (!report.ok()) return Exit(report.status(), "fit-churn");
    return report->fit.converged ? 0 : 1;
  };
}

}  // namespace tend
