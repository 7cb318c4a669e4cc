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
    std::string archive;
    int partitions = 32;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app->add_subcommand("simulate", "Produce a deterministic synthetic cohort.");
  auto* brokers = cmd->add_option("--brokers", f->brokers, "produce to this Kafka (or --archive)");
  cmd->add_option("--archive", f->archive,
                  "instead: write the cohort to this archive file (for tend replay --archive)")
      ->excludes(brokers);
  cmd->add_option("--partitions", f->partitions, "--archive: partitions of the archived topic")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--topic", f->topic)->capture_default_str();
  cmd->add_option("--patients", f->cohort.patients)->capture_default_str();
  cmd->add_option("--days", f->cohort.days)->capture_default_str();
  cmd->add_option("--seed", f->cohort.seed)->capture_default_str();
  cmd->add_option("--end", f->end, "end of the simulated period (default 2026-01-01T00:00:00Z)");
  auto* effect = cmd->add_option(
      "--effect-experiment", f->cohort.effect_experiment,
      "a known effect of the reminders (ground truth for tend uplift): the patients this "
      "experiment id holds out, by the rules' own assignment, check in less");
  cmd->add_option("--effect-holdout", f->cohort.effect_holdout,
                  "the experiment's holdout share, as in the rules file (0, 1]")
      ->needs(effect);
  cmd->add_option("--effect-drop", f->cohort.effect_check_in_drop,
                  "held-out patients' daily chance of checking in is multiplied by 1 - this, "
                  "[0, 1)")
      ->needs(effect);
  return [f](const std::atomic<bool>&) {
    if (!f->end.empty()) {
      if (absl::Status s = ParseTimeFlag("--end", f->end, &f->cohort.end); !s.ok()) {
        return Exit(s, "simulate");
      }
    }
    if (!f->archive.empty()) {
      auto n = SimulateToArchive(f->cohort, f->partitions, f->topic, f->archive);
      if (!n.ok()) return Exit(n.status(), "simulate");
      std::cerr << "wrote " << *n << " records to " << f->archive << std::endl;
      return 0;
    }
    if (f->brokers.empty()) return Exit(absl::InvalidArgumentError("--brokers or --archive is required"), "simulate");
    auto producer = Producer::Create({{"bootstrap.servers", f->brokers}});
    if (!producer.ok()) return Exit(producer.status(), "simulate");
    auto n = SimulateToKafka(f->cohort, producer->get(), f->topic);
    if (!n.ok()) return Exit(n.status(), "simulate");
    std::cerr << "produced " << *n << " records to " << f->topic << std::endl;
    return 0;
  };
}

}  // namespace tend
