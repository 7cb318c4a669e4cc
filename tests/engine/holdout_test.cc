// An experiment's holdout through the real engine (issue 20): the default rule pack with a
// global holdout, a simulated cohort folded from the dev broker. Held-out patients' automated
// reminders never reach the outbox; each is recorded as SUPPRESSED (HOLDOUT) with the command
// that would have gone, which is exactly what the engine without the experiment put in the
// outbox for that patient. Everyone else's outbox is as without the experiment.
#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "rules/rules.h"
#include "storage/storage.h"
#include "tests/testing.h"

namespace tend {
namespace {

// Every command in the directory's outbox, by id; and every HOLDOUT decision's withheld command.
struct Outcome {
  std::map<std::string, v1::ReminderCommand> outbox;
  std::map<std::string, v1::ReminderCommand> withheld;
};

Outcome Fold(const std::vector<v1::Event>& events, const std::string& db,
             const std::string& rules_text) {
  auto rules = RuleSet::Parse(rules_text, "rules.yaml");
  INFO(rules.status());
  REQUIRE(rules.ok());
  EngineOptions options;
  options.rules = std::make_shared<const RuleSet>(*std::move(rules));
  testing::FoldThroughKafka(events, db, options);
  Outcome o;
  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  REQUIRE((*storage)
              ->ForEachCommand([&](int32_t, const v1::ReminderCommand& c) {
                o.outbox[c.command_id()] = c;
                return absl::OkStatus();
              })
              .ok());
  std::set<std::string> patients;
  for (const auto& e : events) patients.insert(e.patient_id());
  for (const std::string& p : patients) {
    auto decisions = (*storage)->RecentDecisions(p, 1000);
    REQUIRE(decisions.ok());
    for (const auto& d : *decisions) {
      if (d.reason() != v1::Decision::HOLDOUT) continue;
      CHECK(d.outcome() == v1::Decision::SUPPRESSED);
      CHECK(d.experiment_id() == "global");
      CHECK(d.withheld().command_id() == d.command_id());
      o.withheld[d.command_id()] = d.withheld();
    }
  }
  return o;
}

TEST_CASE("a global holdout keeps its share's reminders out of the outbox, recorded instead",
          "[integration]") {
  testing::TempDir dir;
  const std::vector<v1::Event> events = testing::Cohort(120, 20, 5);
  std::ifstream in(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  const std::string pack((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Outcome plain = Fold(events, dir.Sub("plain"), pack);
  const Outcome held = Fold(events, dir.Sub("held"),
                            pack + "\nexperiments:\n  - {id: global, holdout: 0.2}\n");
  REQUIRE(!plain.outbox.empty());
  REQUIRE(!held.withheld.empty());
  std::set<std::string> held_patients;
  for (const auto& [id, c] : held.withheld) {
    held_patients.insert(c.patient_id());
    CHECK(AssignmentUnit("global", c.patient_id()) < 0.2);
    CHECK(c.category() != v1::CLINICAL);
    CHECK(c.recipient() == v1::ReminderCommand::PATIENT);
    // What would have gone is what went without the experiment.
    auto it = plain.outbox.find(id);
    REQUIRE(it != plain.outbox.end());
    v1::ReminderCommand as_sent = it->second;
    as_sent.clear_explanation();  // the decision holds it, not the withheld copy
    CHECK(google::protobuf::util::MessageDifferencer::Equals(c, as_sent));
  }
  for (const auto& [id, c] : held.outbox) {
    // In the outbox: nobody held out, except for what an experiment never holds back.
    if (held_patients.count(c.patient_id()) > 0) {
      CHECK((c.category() == v1::CLINICAL || c.recipient() == v1::ReminderCommand::STAFF));
    }
    CHECK(plain.outbox.count(id) == 1);
  }
  // Together, the outbox and the withheld commands are the plain run's outbox.
  CHECK(held.outbox.size() + held.withheld.size() == plain.outbox.size());
  WARN(held_patients.size() << " patients held out; " << held.withheld.size() << " of "
                            << plain.outbox.size() << " commands withheld");
}

}  // namespace
}  // namespace tend
