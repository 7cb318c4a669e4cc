// Rules deciding on one folded event: which rules fire, and what the global policies make of
// each firing — a command (now, or deferred past quiet hours) or a suppression with its reason.
// Pure (DESIGN.md point 5): the time is the partition clock passed in, never the wall clock, so
// a replay of the log makes exactly the decisions the live run made.
//
// Status (issue 4): event and `became` triggers with every policy. Absence and schedule triggers
// need timers in RocksDB (not built yet); the engine does not call Decide yet.
//
// Thread safety: pure functions.
#ifndef TEND_ENGINE_DECIDE_H_
#define TEND_ENGINE_DECIDE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "engine/rules.h"
#include "tend/v1/commands.pb.h"
#include "tend/v1/state.pb.h"

namespace tend {

// Global policies (DOMAIN.md "never harass"), with their defaults.
struct PolicyOptions {
  // Quiet hours in the patient's local time, [start, end) in minutes after midnight; may cross
  // midnight. A reminder due inside is deferred to the end, or dropped if its time to live ends
  // first. Default 21:00-08:00.
  int quiet_start_minute = 21 * 60;
  int quiet_end_minute = 8 * 60;
  // Reminders per patient per local day, per category.
  std::map<v1::Category, int> daily_cap = {
      {v1::CLINICAL, 3}, {v1::CARE, 2}, {v1::MARKETING, 1}};
};

struct DecideInput {
  const v1::PatientView* before = nullptr;  // the view before the event; null for a new patient
  const v1::PatientView* after = nullptr;   // the view after it
  const v1::Event* event = nullptr;         // the event folded
  absl::Time now;                           // the partition clock (the event's recorded_at)
  absl::TimeZone tz;                        // the patient's calendar
  std::string staff_id;                     // the patient's assigned health manager
};

struct DecideOutput {
  std::vector<v1::ReminderCommand> commands;
  std::vector<v1::Decision> decisions;  // one per rule whose trigger fired
};

// Decides every event and `became` rule for one folded event; updates `state` (cooldowns, caps).
void DecideOnEvent(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& input,
                   v1::RulesState* state, DecideOutput* out);

// hash(rule id, rule version, patient, trigger) as 32 hex digits: FNV-1a 64 over the fields,
// twice with different seeds, each finished with splitmix64. Stable across builds and versions.
std::string CommandId(absl::string_view rule_id, int rule_version, absl::string_view patient_id,
                      absl::string_view trigger);

// The end of quiet hours that `t` falls in (local time), or `t` itself outside them.
absl::Time QuietHoursEnd(const PolicyOptions& policy, absl::Time t, const absl::TimeZone& tz);

}  // namespace tend

#endif  // TEND_ENGINE_DECIDE_H_
