// tend archive: the events topic exported to an archive file (tools/replay.h ExportArchive).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"
#include "tools/replay.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddArchiveCommand(CLI::App* app) {
  struct Flags {
    ArchiveOptions archive;
    KafkaFlags kafka;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "archive", "Export the events topic to a versioned, checksummed archive file.");
  cmd->add_option("--brokers", f->archive.brokers, "bootstrap servers")->required();
  cmd->add_option("--out", f->archive.out, "the archive file")->required();
  cmd->add_option("--topic", f->archive.topic)->capture_default_str();
  AddKafkaFlag(cmd, &f->kafka);
  return [f](const std::atomic<bool>& stop) {
    ArchiveOptions& archive = f->archive;
    if (absl::Status s = ParseKafkaFlags(f->kafka, &archive.kafka); !s.ok()) {
      return Exit(s, "archive");
    }
    archive.progress_bar = isatty(fileno(stderr)) != 0;
    auto report = ExportArchive(archive, stop, std::cerr);
    if (!report.ok()) return Exit(report.status(), "archive");
    std::cerr << absl::StrFormat("archived %d records of %s (%d partitions) to %s: %d bytes in "
                                 "%.1f s\n",
                                 report->records, archive.topic, report->partitions, archive.out,
                                 report->bytes, absl::ToDoubleSeconds(report->elapsed));
    return 0;
  };
}

}  // namespace tend
