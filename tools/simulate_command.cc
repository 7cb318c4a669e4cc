// tend simulate: a deterministic synthetic cohort produced to Kafka (tools/simulate.h).
#include <iostream>

#include "dev/produce_cohort.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddSimulateCommand(CLI::App* app) {
  struct Flags {
    std::string brokers;
    std::string topic = "tend.events";
    CohortOptions cohort;
    std::string end;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand("simulate", "Produce a deterministic synthetic cohort.");
  cmd->add_option("--brokers", f->brokers)->required();
  cmd->add_option("--topic", f->topic)->capture_default_str();
  cmd->add_option("--patients", f->cohort.patients)->capture_default_str();
  cmd->add_option("--days", f->cohort.days)->capture_default_str();
  cmd->add_option("--seed", f->cohort.seed)->capture_default_str();
  cmd->add_option("--end", f->end, "end of the simulated period (default 2026-01-01T00:00:00Z)");
  return [f](const std::atomic<bool>&) {
    if (!f->end.empty()) {
      if (absl::Status s = ParseTimeFlag("--end", f->end, &f->cohort.end); !s.ok()) {
        return Exit(s, "simulate");
      }
    }
    auto producer = Producer::Create({{"bootstrap.servers", f->brokers}});
    if (!producer.ok()) return Exit(producer.status(), "simulate");
    auto n = SimulateToKafka(f->cohort, producer->get(), f->topic);
    if (!n.ok()) return Exit(n.status(), "simulate");
    std::cerr << "produced " << *n << " records to " << f->topic << std::endl;
    return 0;
  };
}

}  // namespace tend
