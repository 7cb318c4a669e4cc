// tend explain: a patient's recent rule decisions (tools/commands.h ExplainPatient).
#include <iostream>

#include "tools/commands.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddExplainCommand(CLI::App* app) {
  struct Flags {
    std::string db, patient;
    int limit = 20;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "explain", "Why a patient got (or did not get) each reminder: recent rule decisions with "
                 "the values behind them.");
  cmd->add_option("--db", f->db)->required();
  cmd->add_option("PATIENT", f->patient)->required();
  cmd->add_option("--limit", f->limit, "decisions, newest first")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  return [f](const std::atomic<bool>&) {
    return Exit(ExplainPatient(f->db, f->patient, f->limit, std::cout), "explain");
  };
}

}  // namespace tend
