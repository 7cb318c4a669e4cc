// tend dump: every patient's projections as JSON lines or CSV (tools/commands.h DumpPatients,
// tools/dump_format.h).
#include <iostream>

#include "tools/commands.h"
#include "tools/dump_format.h"
#include "base/temp_dir.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddDumpCommand(CLI::App* app) {
  struct Flags {
    DumpOptions dump;
    std::string out, as_of;
    std::string format = "jsonl";
    bool dictionary = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "dump", "Every projection of every patient as JSON lines or CSV, from one consistent "
              "snapshot of a state directory (works beside a running engine), or through any "
              "instance of a running deployment (--grpc).");
  cmd->add_option("--db", f->dump.db_dir, "state directory");
  cmd->add_option("--grpc", f->dump.remote.target,
                  "instead of --db: any engine instance of a running deployment, host:port "
                  "(its ListPatients gathers from every instance)");
  AddClientSecurityFlags(cmd, "--grpc", &f->dump.remote.security);
  cmd->add_option("--format", f->format, "jsonl or csv")
      ->capture_default_str()
      ->check(CLI::IsMember({"jsonl", "csv"}));
  cmd->add_option("--where", f->dump.where,
                  "only matching patients: COLUMN OP VALUE[,...], e.g. stage=silent,program=P "
                  "or risk>=0.5");
  cmd->add_flag("--dictionary", f->dictionary, "print the CSV data dictionary (Markdown) and exit");
  cmd->add_option("--out", f->out, "output file (default stdout)");
  cmd->add_option("--config", f->dump.config_path,
                  "engine config YAML (default: the one the engine recorded in --db)");
  cmd->add_option("--as-of", f->as_of,
                  "RFC 3339 instant to view at (default: each partition's clock)");
  cmd->add_flag("--state", f->dump.raw_state,
                "print the stored sufficient statistics (PatientState) instead");
  return [f](const std::atomic<bool>& stop) {
    DumpOptions& dump = f->dump;
    dump.remote.stop = &stop;
    if (f->dictionary) {
      std::cout << DumpColumns().Dictionary();
      return 0;
    }
    if (dump.db_dir.empty() == dump.remote.target.empty()) {
      return Exit(absl::InvalidArgumentError("give one of --db (a state directory) and --grpc "
                                             "(an instance of a running deployment)"),
                  "dump");
    }
    dump.format = f->format == "csv" ? DumpOptions::Format::kCsv : DumpOptions::Format::kJsonl;
    if (absl::Status s = ParseOptionalTimeFlag("--as-of", f->as_of, &dump.as_of); !s.ok()) {
      return Exit(s, "dump");
    }
    if (f->out.empty()) {
      auto report = DumpPatients(dump, std::cout, std::cerr);
      if (!report.ok()) return Exit(report.status(), "dump");
      std::cerr << "dumped " << report->patients << " patients; snapshot: "
                << DumpStamp(dump, *report) << std::endl;
      return 0;
    }
    // No half-written dump is left behind; the snapshot stamp goes beside it, in
    // OUT.snapshot.json.
    absl::StatusOr<DumpReport> report;
    if (absl::Status s = WriteFileAtomically(f->out, [&](std::ostream& out) {
          report = DumpPatients(dump, out, std::cerr);
          return report.status();
        });
        !s.ok()) {
      return Exit(s, "dump");
    }
    const std::string stamp_path = f->out + ".snapshot.json";
    if (absl::Status s = WriteFileAtomically(stamp_path, [&](std::ostream& out) {
          out << DumpStamp(dump, *report) << '\n';
          return absl::OkStatus();
        });
        !s.ok()) {
      return Exit(s, "dump");
    }
    std::cerr << "dumped " << report->patients << " of " << report->scanned << " patients to "
              << f->out << " (snapshot stamp in " << stamp_path << ")" << std::endl;
    return 0;
  };
}

}  // namespace tend
