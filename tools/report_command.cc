// tend report: the self-contained HTML cohort report (tools/report.h).
#include <iostream>

#include "base/temp_dir.h"
#include "tools/report.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddReportCommand(CLI::App* app) {
  struct Flags {
    ReportOptions report;
    std::string out, as_of;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "report", "A self-contained HTML cohort report (inline SVG charts, no network).");
  cmd->add_option("--db", f->report.db_dir, "state directory");
  cmd->add_option("--grpc", f->report.remote.target,
                  "instead of --db: any engine instance of a running deployment, host:port "
                  "(its CohortStats gathers from every instance)");
  AddClientSecurityFlags(cmd, "--grpc", &f->report.remote.security);
  cmd->add_option("--out", f->out, "the HTML file")->required();
  cmd->add_option("--as-of", f->as_of,
                  "RFC 3339 instant to view at (default: each partition's clock)");
  cmd->add_option("--config", f->report.config_path,
                  "engine config YAML (default: the one the engine recorded in --db)");
  cmd->add_option("--rules", f->report.rules_path,
                  "with --db: the rules file whose experiments' uplift to add (a running "
                  "deployment compares the experiments of the rules it runs)");
  cmd->add_option("--title", f->report.title)->capture_default_str();
  return [f](const std::atomic<bool>& stop) {
    f->report.remote.stop = &stop;
    if (f->report.db_dir.empty() == f->report.remote.target.empty()) {
      return Exit(absl::InvalidArgumentError("give one of --db (a state directory) and --grpc "
                                             "(an instance of a running deployment)"),
                  "report");
    }
    if (absl::Status s = ParseOptionalTimeFlag("--as-of", f->as_of, &f->report.as_of); !s.ok()) {
      return Exit(s, "report");
    }
    auto stats = ComputeCohortStats(f->report, std::cerr);
    if (!stats.ok()) return Exit(stats.status(), "report");
    if (absl::Status s = WriteFileAtomically(f->out, [&](std::ostream& out) {
          out << RenderReport(*stats, f->report);
          return absl::OkStatus();
        });
        !s.ok()) {
      return Exit(s, "report");
    }
    std::cerr << "report of " << stats->patients() << " patients written to " << f->out
              << std::endl;
    return 0;
  };
}

}  // namespace tend
