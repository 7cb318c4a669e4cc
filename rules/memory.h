// Rule memories: what the rules remember of a patient (RulesState's columns, storage format 9),
// one row per rule, and the upgrade of format 8's messages into them. A leaf of rules/ (proto and
// base only): storage checks and upgrades the memories of every patient record it parses
// (storage/storage.cc ParsePatient); the decisions (rules/decide.h) read and write them.
#ifndef TEND_RULES_MEMORY_H_
#define TEND_RULES_MEMORY_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "base/hash.h"
#include "tend/v1/state.pb.h"

namespace tend {

// The number that names a rule in a patient's memories (RulesState.memory_rule): Fingerprint64 of
// its id (base/hash.h). Stable forever: it is on disk. A rule set whose ids share a fingerprint
// is refused when it is compiled (rules/rules.h); a rule since removed whose id shares one with
// a rule added later would hand that rule its memory (about 2^-64 for a pair of ids).
inline uint64_t RuleFingerprint(absl::string_view rule_id) { return Fingerprint64(rule_id); }

// One rule's memory by value (the columns' fields, as RuleMemory documents them).
struct RuleMemoryRow {
  int64_t last_fired_s = 0;
  int64_t timer_due_s = 0;
  int64_t absence_anchor_s = 0;
  v1::RuleMemory::Held became = v1::RuleMemory::HELD_UNKNOWN;
  int64_t date_target_s = 0;
};

// A row of a RulesState's columns, to read and write in place. Valid while no row is added to
// or removed from the state (rows are only ever added, at the end).
class RuleMemoryRef {
 public:
  RuleMemoryRef(v1::RulesState* state, int row) : state_(state), row_(row) {}

  int64_t last_fired_s() const { return state_->memory_last_fired_s(row_); }
  int64_t timer_due_s() const { return state_->memory_timer_due_s(row_); }
  int64_t absence_anchor_s() const { return state_->memory_absence_anchor_s(row_); }
  v1::RuleMemory::Held became() const {
    return static_cast<v1::RuleMemory::Held>(state_->memory_became(row_));
  }
  int64_t date_target_s() const { return state_->memory_date_target_s(row_); }

  void set_last_fired_s(int64_t v) { state_->set_memory_last_fired_s(row_, v); }
  void set_timer_due_s(int64_t v) { state_->set_memory_timer_due_s(row_, v); }
  void set_absence_anchor_s(int64_t v) { state_->set_memory_absence_anchor_s(row_, v); }
  void set_became(v1::RuleMemory::Held v) { state_->set_memory_became(row_, v); }
  void set_date_target_s(int64_t v) { state_->set_memory_date_target_s(row_, v); }

 private:
  v1::RulesState* state_;
  int row_;
};

// The row of the rule with this fingerprint, or -1. Linear: a handful of rows per patient.
int FindRuleMemoryRow(const v1::RulesState& state, uint64_t rule);
// At most this many rows of room ahead: a patient meets only some rules of a large set, and a
// cached state's bytes are counted by its encoded size, not its columns' capacity.
inline constexpr int kMaxRuleMemoryRowsAhead = 32;
// Appends a row for the rule, every field zero (HELD_UNKNOWN); returns its index. With room for
// `expected_rows` rows (at most kMaxRuleMemoryRowsAhead) in each column when they have less (e.g.
// the rule set's size).
int AddRuleMemoryRow(v1::RulesState* state, uint64_t rule, int expected_rows = 0);
// The earliest timer the memories hold (the least positive timer_due_s of any row, a rule since
// removed from the set included), or 0 when none is armed: the patient's alarm, the one timer key
// the engine keeps per patient (storage/format.h `timers`, format 12).
int64_t EarliestTimer(const v1::RulesState& state);
// The rule's memory by value, or all zeros when it has none.
RuleMemoryRow ReadRuleMemory(const v1::RulesState& state, absl::string_view rule_id);

// Moves memories stored as messages (RulesState.rules, storage format 8 and older) into the
// columns, in stored order, and checks the columns: false for a damaged record (columns of
// different lengths, two rows of one rule, a `became` value that is not a RuleMemory.Held).
// The state is then what deciding on the same events with format 9 gives, up to row order.
bool UpgradeRuleMemories(v1::RulesState* state);

}  // namespace tend

#endif  // TEND_RULES_MEMORY_H_
