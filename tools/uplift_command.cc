// tend uplift: did the reminders work? Each experiment's arms compared on the outcomes after
// assignment (projections/uplift.h), as text or proto3 JSON lines.
#include <google/protobuf/util/json_util.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "tools/report.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddUpliftCommand(CLI::App* app) {
  struct Flags {
    ReportOptions report;
    std::string as_of, experiment;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "uplift",
      "Compare each experiment's arms (holdouts, variants) on what happened after assignment: "
      "both arms' values, the difference with its 95% confidence interval, the p-value.");
  cmd->add_option("--db", f->report.db_dir, "state directory (with --rules)");
  cmd->add_option("--rules", f->report.rules_path,
                  "the rules file whose experiments to compare (with --db)");
  cmd->add_option("--grpc", f->report.remote.target,
                  "instead of --db: any engine instance of a running deployment, host:port (it "
                  "compares the experiments of the rules it runs)");
  AddClientSecurityFlags(cmd, "--grpc", &f->report.remote.security);
  cmd->add_option("--as-of", f->as_of,
                  "RFC 3339 instant to view at (default: each partition's clock)");
  cmd->add_option("--config", f->report.config_path,
                  "engine config YAML (default: the one the engine recorded in --db)");
  cmd->add_option("--experiment", f->experiment,
                  "only this experiment (an experiment id, or variants:RULE_ID)");
  cmd->add_flag("--json", f->json, "one tend.v1.ExperimentUplift per line, proto3 JSON");
  return [f](const std::atomic<bool>& stop) {
    f->report.remote.stop = &stop;
    if (f->report.db_dir.empty() == f->report.remote.target.empty()) {
      return Exit(absl::InvalidArgumentError("give one of --db (a state directory, with --rules) "
                                             "and --grpc (an instance of a running deployment)"),
                  "uplift");
    }
    if (!f->report.db_dir.empty() && f->report.rules_path.empty()) {
      return Exit(absl::InvalidArgumentError(
                      "--db needs --rules: the rules file whose experiments to compare"),
                  "uplift");
    }
    if (absl::Status s = ParseOptionalTimeFlag("--as-of", f->as_of, &f->report.as_of); !s.ok()) {
      return Exit(s, "uplift");
    }
    auto stats = ComputeCohortStats(f->report, std::cerr);
    if (!stats.ok()) return Exit(stats.status(), "uplift");
    int shown = 0;
    for (const v1::ExperimentUplift& u : stats->uplift()) {
      if (!f->experiment.empty() && u.experiment() != f->experiment) continue;
      ++shown;
      if (f->json) {
        std::string line;
        google::protobuf::util::JsonPrintOptions options;
        options.preserve_proto_field_names = true;
        if (auto s = google::protobuf::util::MessageToJsonString(u, &line, options); !s.ok()) {
          return Exit(absl::InternalError(std::string(s.message())), "uplift");
        }
        std::cout << line << "\n";
      } else {
        std::cout << FormatUplift(u) << "\n";
      }
    }
    std::cout.flush();
    if (shown == 0) {
      return Exit(absl::NotFoundError(
                      f->experiment.empty()
                          ? "the rules declare no experiment (experiments:, or rules with "
                            "variants:)"
                          : absl::StrCat("no experiment \"", f->experiment, "\" in the rules")),
                  "uplift");
    }
    std::cerr << "uplift of " << shown << " experiment(s) over " << stats->patients()
              << " patients" << std::endl;
    return 0;
  };
}

}  // namespace tend
