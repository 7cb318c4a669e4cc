// Rules deciding for one patient: on a folded event (event and `became` triggers; absence timers
// moved, schedule timers armed) and when one of the patient's timers falls due (absence and
// schedule triggers). Then what the global policies make of each firing — a command (now, or
// deferred past quiet hours) or a suppression with its reason. Pure (docs/design.md, "Pure
// projections"): the time is the partition clock passed in, never the wall clock, so a replay of
// the log makes exactly the decisions the live run made. The caller keeps the timer index (the
// `timers` column family) in step with the TimerChanges returned.
//
// Thread safety: pure functions; a LazyView is single-threaded.
#ifndef TEND_RULES_DECIDE_H_
#define TEND_RULES_DECIDE_H_

#include <google/protobuf/arena.h>
#include <google/protobuf/repeated_ptr_field.h>
#include <google/protobuf/timestamp.pb.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "projections/churn.h"
#include "projections/config.h"
#include "rules/memory.h"  // ReadRuleMemory: a patient's memory of a rule
#include "rules/rules.h"
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

// The patient's view at the partition clock, computed section by section as rules read it: an
// event that only moves the check-in projections costs no churn model evaluation.
class LazyView {
 public:
  // Looks up the patient's calendar once (projections::PatientTimeZone).
  LazyView(const projections::ProjectionConfig& config, const v1::PatientState& state,
           absl::Time as_of);
  // With the patient's calendar already looked up: `tz` and its name as PatientTimeZone gives
  // them, and `days` (may be null) summarising the state's activity slots in `tz`
  // (projections::ComputeViewParts). `tz_name` and `days` are borrowed and must outlive the view.
  // With `scratch`, the view is built in it (what the view before computed emptied first,
  // projections::ClearViewForReuse): a caller that decides again and again (the engine) keeps
  // one, and a view's section messages are not made and freed for every decision (their
  // Timestamps and maps still are). Borrowed: one LazyView at a time may use it.
  struct Scratch {
    v1::PatientView view;
    uint32_t computed = 0;  // the ViewParts computed into it since it was last emptied
  };
  LazyView(const projections::ProjectionConfig& config, const v1::PatientState& state,
           absl::Time as_of, const absl::TimeZone& tz, absl::string_view tz_name,
           const projections::ActiveDaySummary* days, Scratch* scratch = nullptr);
  // Not copyable: it may refer to its own copy of the zone name.
  LazyView(const LazyView&) = delete;
  LazyView& operator=(const LazyView&) = delete;
  // The view with at least the sections in `parts` (projections::ViewPart bits) computed.
  const v1::PatientView& Get(uint32_t parts);
  const absl::TimeZone& tz() const { return tz_; }

 private:
  const projections::ProjectionConfig& config_;
  const v1::PatientState& state_;
  const absl::Time as_of_;
  std::string own_zone_name_;  // when looked up here
  absl::string_view zone_name_;
  absl::TimeZone tz_;
  const projections::ActiveDaySummary* days_ = nullptr;
  std::optional<v1::PatientView> own_view_;  // without a scratch view
  v1::PatientView* view_;                    // the scratch's, or own_view_
  Scratch* scratch_ = nullptr;
  uint32_t computed_ = 0;
};

// A patient's rule memories (RulesState's memory rows, rules/memory.h) by the position of their
// rule in the RuleSet, for a caller that decides for one patient again and again (the engine
// keeps one per cached patient): deciding then reaches a rule's memory without looking for its
// fingerprint. Built on first use; valid for one RuleSet and one RulesState while its memories
// change only through DecideOnEvent and DecideOnTimer given this index.
struct RuleMemoryIndex {
  bool built = false;
  std::vector<int> by_rule;  // the rule's row; -1: none yet
};

struct DecideInput {
  const v1::PatientState* state = nullptr;  // the patient (after the event, when there is one)
  const v1::Event* event = nullptr;         // the event folded; null when a timer falls due
  bool first_event = false;                 // the event is the patient's first
  absl::Time now;                           // the partition clock
  absl::TimeZone tz;                        // the patient's calendar (LazyView::tz())
  LazyView* view = nullptr;                 // of *state at `now`
  RuleMemoryIndex* memories = nullptr;      // optional: of the RulesState decided on
};

// A timer of the patient that was armed, moved or removed; due times in unix seconds, 0: none.
struct TimerChange {
  std::string rule_id;
  int64_t old_due_s = 0;
  int64_t new_due_s = 0;
};

// What decision calls produced since the last Clear. Reusable: Clear keeps the messages and
// the capacity of their strings, so a caller that decides again and again (the engine keeps one)
// builds each decision into memory an earlier one used: a string field costs no allocation,
// arena cleanup or free. The submessages proto3's Clear would free - a decision's `at` and
// explanation, a command's times and explanation - are lent by the output from pools it keeps
// and taken back by Clear (a holdout's `withheld` copy and a command's parameters are still made
// anew). Sized by the largest call so far. (docs/benchmarks.md, "Reused decision messages and
// view".) A fired decision and its command (or a suppressed decision and nothing) refer to one
// Explanation the output owns: read them, copy them, but mutate neither's lent submessages in
// place, release them, or clear the repeated fields other than through Clear. Adding a copy of
// a decision made elsewhere (as a test does) is fine: its submessages are its own. Not
// copyable.
class DecideOutput {
 public:
  DecideOutput() = default;
  DecideOutput(const DecideOutput&) = delete;
  DecideOutput& operator=(const DecideOutput&) = delete;
  ~DecideOutput() { Clear(); }

  // Empties the output, keeping its messages for the next decisions.
  void Clear();

  // For deciders (rules/decide.cc): an empty explanation the output owns until Clear; the
  // explanation `e` (one of those) and an `at` of `at_s` lent to `d`, an element of decisions
  // that stays there until Clear; a not_before and an expires_at lent to `c`, the last of
  // commands, which stays there until Clear or RemoveLastCommand; the explanation `e` lent to
  // `c` (after its times).
  v1::Explanation* NewExplanation();
  void Attach(v1::Decision* d, v1::Explanation* e, int64_t at_s);
  void AttachTimes(v1::ReminderCommand* c, int64_t not_before_s, int64_t expires_at_s);
  void Attach(v1::ReminderCommand* c, v1::Explanation* e);
  // Removes the last command, taking back what it was lent.
  void RemoveLastCommand();

  google::protobuf::RepeatedPtrField<v1::ReminderCommand> commands;
  google::protobuf::RepeatedPtrField<v1::Decision> decisions;  // one per firing, whatever became
  std::vector<TimerChange> timer_changes;

 private:
  google::protobuf::Timestamp* NewTimestamp(int64_t seconds);

  std::vector<std::unique_ptr<v1::Explanation>> explanations_;  // [0, used_) handed out
  size_t explanations_used_ = 0;
  std::vector<std::unique_ptr<google::protobuf::Timestamp>> timestamps_;  // the same
  size_t timestamps_used_ = 0;
  std::vector<v1::Decision*> attached_decisions_;
  std::vector<v1::ReminderCommand*> attached_commands_;
};

// Decides every event and `became` rule for one folded event, moves absence timers the event
// satisfies and arms missing schedule timers. Updates `state` (cooldowns, caps, timers).
void DecideOnEvent(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& input,
                   v1::RulesState* state, DecideOutput* out);

// The timer of rule `rule_id` due at `due_s` (<= input.now) fires: an absence or schedule
// firing, decided like any other; a schedule timer is re-armed for its next local occurrence.
// A timer that no longer matches `state` (moved since it was indexed) or whose rule left the rule
// set is dropped without a decision.
void DecideOnTimer(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& input,
                   absl::string_view rule_id, int64_t due_s, v1::RulesState* state,
                   DecideOutput* out);

// Every timer of the patient due at `due_s` (<= input.now) fires, as DecideOnTimer fires one:
// the rule set's rules whose memory holds that due time, in the order of their ids (RuleSet::
// id_order, as per-rule timer keys fired), then the timers of rules since removed, which are
// dropped. How the engine fires a patient's alarm (rules/memory.h EarliestTimer): one timer key
// per patient, at its earliest timer, instead of one per rule.
void DecideOnTimersDue(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& input,
                       int64_t due_s, v1::RulesState* state, DecideOutput* out);

// Reminders of `category` counted against the cap on local `day`.
int SentOn(const v1::RulesState& state, absl::CivilDay day, v1::Category category);

// The next instant after `t` at `minute_of_day` local time in `tz` (DST-correct: a local time a
// DST change skips resolves to the instant just after the gap).
absl::Time NextLocalTime(absl::Time t, int minute_of_day, const absl::TimeZone& tz);

// hash(rule id, rule version, patient, trigger) as 32 hex digits: FNV-1a 64 over the fields,
// twice with different seeds, each finished with splitmix64. Stable across builds and versions.
std::string CommandId(absl::string_view rule_id, int rule_version, absl::string_view patient_id,
                      absl::string_view trigger);

// The end of quiet hours that `t` falls in (local time), or `t` itself outside them.
absl::Time QuietHoursEnd(const PolicyOptions& policy, absl::Time t, const absl::TimeZone& tz);

}  // namespace tend

#endif  // TEND_RULES_DECIDE_H_
