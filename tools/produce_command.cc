// tend produce: events from a JSONL file (tools/commands.h ProduceJsonl).
#include <fstream>
#include <iostream>

#include "tools/commands.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddProduceCommand(CLI::App* app) {
  struct Flags {
    std::string brokers;
    std::string topic = "tend.events";
    std::string input;
    KafkaFlags kafka;
    ProduceJsonlOptions produce;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand(
      "produce", "Produce events from a JSONL file (one proto3-JSON tend.v1.Event per line).");
  cmd->add_option("--brokers", f->brokers)->required();
  cmd->add_option("--topic", f->topic)->capture_default_str();
  cmd->add_option("--input", f->input, "JSONL file, or - for stdin")->required();
  cmd->add_flag("--historical", f->produce.historical,
                "an import of past events: keep each line's recordedAt (else the time of "
                "ingest replaces it); a recordedAt in the future is refused");
  AddKafkaFlag(cmd, &f->kafka);
  return [f](const std::atomic<bool>&) {
    KafkaProps props = {{"bootstrap.servers", f->brokers}};
    if (absl::Status s = ParseKafkaFlags(f->kafka, &props); !s.ok()) return Exit(s, "produce");
    std::ifstream file;
    if (f->input != "-") {
      file.open(f->input);
      if (!file) return Exit(absl::NotFoundError("cannot read --input " + f->input), "produce");
    }
    auto producer = Producer::Create(props);
    if (!producer.ok()) return Exit(producer.status(), "produce");
    auto report =
        ProduceJsonl(f->input == "-" ? std::cin : file, producer->get(), f->topic, std::cerr,
                     f->produce);
    if (!report.ok()) return Exit(report.status(), "produce");
    std::cerr << "produced " << report->produced << " of " << report->lines << " events";
    if (report->bad > 0) std::cerr << "; " << report->bad << " bad lines (see above)";
    if (report->restamped > 0) {
      std::cerr << "; " << report->restamped
                << " recordedAt values replaced by the time of ingest (--historical keeps them)";
    }
    std::cerr << std::endl;
    return report->bad > 0 ? 1 : 0;
  };
}

}  // namespace tend
