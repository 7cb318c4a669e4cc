#include "rules/memory.h"

#include <algorithm>
#include <vector>

namespace tend {

int FindRuleMemoryRow(const v1::RulesState& state, uint64_t rule) {
  const auto& rules = state.memory_rule();
  for (int i = 0; i < rules.size(); ++i) {
    if (rules.Get(i) == rule) return i;
  }
  return -1;
}

int64_t EarliestTimer(const v1::RulesState& state) {
  int64_t earliest = 0;
  for (const int64_t due_s : state.memory_timer_due_s()) {
    // A due time at or before the epoch is none (only a damaged row holds one): its key would
    // sort after every other.
    if (due_s > 0 && (earliest == 0 || due_s < earliest)) earliest = due_s;
  }
  return earliest;
}

int AddRuleMemoryRow(v1::RulesState* state, uint64_t rule, int expected_rows) {
  expected_rows = std::min(expected_rows, kMaxRuleMemoryRowsAhead);
  if (expected_rows > state->memory_rule().Capacity()) {
    // Each column at once, instead of growing step by step (four reallocations each to reach the
    // default pack's 13 rows).
    state->mutable_memory_rule()->Reserve(expected_rows);
    state->mutable_memory_last_fired_s()->Reserve(expected_rows);
    state->mutable_memory_timer_due_s()->Reserve(expected_rows);
    state->mutable_memory_absence_anchor_s()->Reserve(expected_rows);
    state->mutable_memory_became()->Reserve(expected_rows);
    state->mutable_memory_date_target_s()->Reserve(expected_rows);
  }
  state->add_memory_rule(rule);
  state->add_memory_last_fired_s(0);
  state->add_memory_timer_due_s(0);
  state->add_memory_absence_anchor_s(0);
  state->add_memory_became(v1::RuleMemory::HELD_UNKNOWN);
  state->add_memory_date_target_s(0);
  return state->memory_rule_size() - 1;
}

RuleMemoryRow ReadRuleMemory(const v1::RulesState& state, absl::string_view rule_id) {
  RuleMemoryRow row;
  const int i = FindRuleMemoryRow(state, RuleFingerprint(rule_id));
  if (i < 0) return row;
  row.last_fired_s = state.memory_last_fired_s(i);
  row.timer_due_s = state.memory_timer_due_s(i);
  row.absence_anchor_s = state.memory_absence_anchor_s(i);
  row.became = static_cast<v1::RuleMemory::Held>(state.memory_became(i));
  row.date_target_s = state.memory_date_target_s(i);
  return row;
}

bool UpgradeRuleMemories(v1::RulesState* state) {
  const int n = state->memory_rule_size();
  if (state->memory_last_fired_s_size() != n || state->memory_timer_due_s_size() != n ||
      state->memory_absence_anchor_s_size() != n || state->memory_became_size() != n ||
      state->memory_date_target_s_size() != n) {
    return false;
  }
  for (const v1::RuleMemory& m : state->rules()) {
    const int row = AddRuleMemoryRow(state, RuleFingerprint(m.rule_id()));
    RuleMemoryRef ref(state, row);
    ref.set_last_fired_s(m.last_fired_s());
    ref.set_timer_due_s(m.timer_due_s());
    ref.set_absence_anchor_s(m.absence_anchor_s());
    ref.set_became(m.became());
    ref.set_date_target_s(m.date_target_s());
  }
  state->clear_rules();
  for (const int32_t held : state->memory_became()) {
    if (!v1::RuleMemory::Held_IsValid(held)) return false;
  }
  // One row per rule. A patient has a row per rule it has met, a handful: compared pairwise,
  // without an allocation on the cache-miss path. A record is hostile input, so many rows are
  // sorted first (O(n log n), not O(n^2)).
  const auto& rows = state->memory_rule();
  constexpr int kPairwise = 32;
  if (rows.size() <= kPairwise) {
    for (int i = 1; i < rows.size(); ++i) {
      for (int j = 0; j < i; ++j) {
        if (rows.Get(j) == rows.Get(i)) return false;
      }
    }
    return true;
  }
  std::vector<uint64_t> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end());
  return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
}

}  // namespace tend
