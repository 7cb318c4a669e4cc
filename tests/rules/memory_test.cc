// Rule memories (rules/memory.h): the upgrade from format 8's messages and the checks every
// parsed record's memories pass.
#include "rules/memory.h"

#include <catch2/catch.hpp>

#include <string>

namespace tend {
namespace {

TEST_CASE("format 8 memories move into the columns in stored order, and read back by rule id",
          "[rules]") {
  v1::RulesState state;
  for (const char* id : {"b-rule", "a-rule"}) {
    v1::RuleMemory* m = state.add_rules();
    m->set_rule_id(id);
    m->set_last_fired_s(id[0] == 'a' ? 10 : 20);
    m->set_became(v1::RuleMemory::HELD_FALSE);
  }
  REQUIRE(UpgradeRuleMemories(&state));
  CHECK(state.rules_size() == 0);
  REQUIRE(state.memory_rule_size() == 2);
  CHECK(state.memory_rule(0) == RuleFingerprint("b-rule"));
  CHECK(ReadRuleMemory(state, "a-rule").last_fired_s == 10);
  CHECK(ReadRuleMemory(state, "b-rule").last_fired_s == 20);
  CHECK(ReadRuleMemory(state, "b-rule").became == v1::RuleMemory::HELD_FALSE);
  const std::string once = state.SerializeAsString();
  REQUIRE(UpgradeRuleMemories(&state));  // nothing left to move
  CHECK(state.SerializeAsString() == once);
  // A row added later goes at the end, every field zero.
  const int row = AddRuleMemoryRow(&state, RuleFingerprint("c-rule"));
  CHECK(row == 2);
  CHECK(FindRuleMemoryRow(state, RuleFingerprint("c-rule")) == 2);
  CHECK(ReadRuleMemory(state, "c-rule").became == v1::RuleMemory::HELD_UNKNOWN);
  CHECK(FindRuleMemoryRow(state, RuleFingerprint("no-rule")) == -1);
}

TEST_CASE("damaged memories are refused: unequal columns, a rule twice, a became out of range",
          "[rules]") {
  v1::RulesState short_column;
  AddRuleMemoryRow(&short_column, 1);
  short_column.add_memory_timer_due_s(5);
  CHECK_FALSE(UpgradeRuleMemories(&short_column));

  v1::RulesState bad_held;
  AddRuleMemoryRow(&bad_held, 1);
  bad_held.set_memory_became(0, 3);
  CHECK_FALSE(UpgradeRuleMemories(&bad_held));

  // A rule twice, among a few rows and among many (the sorted check), and in a column and a
  // format-8 message at once.
  for (const int rows : {2, 32, 33, 5000}) {
    INFO(rows);
    v1::RulesState state;
    for (int i = 0; i < rows; ++i) AddRuleMemoryRow(&state, 1000 + i);
    CHECK(UpgradeRuleMemories(&state));
    AddRuleMemoryRow(&state, 1000 + rows / 2);
    CHECK_FALSE(UpgradeRuleMemories(&state));
  }
  v1::RulesState both;
  AddRuleMemoryRow(&both, RuleFingerprint("welcome"));
  both.add_rules()->set_rule_id("welcome");
  CHECK_FALSE(UpgradeRuleMemories(&both));
}

TEST_CASE("a first rule memory row makes room for the rule set, up to a bound") {
  v1::RulesState pack;
  AddRuleMemoryRow(&pack, 1, 13);
  CHECK(pack.memory_rule_size() == 1);
  CHECK(pack.memory_rule().Capacity() >= 13);
  CHECK(pack.memory_date_target_s().Capacity() >= 13);
  v1::RulesState large;  // a large rule set: room for the bound, not for every rule
  AddRuleMemoryRow(&large, 1, 5000);
  CHECK(large.memory_rule().Capacity() >= kMaxRuleMemoryRowsAhead);
  CHECK(large.memory_rule().Capacity() < 5000);
  CHECK(large.memory_became().Capacity() < 5000);
  for (int i = 2; i <= 40; ++i) AddRuleMemoryRow(&large, i, 5000);
  CHECK(large.memory_rule_size() == 40);  // rows past the room still come
  CHECK(large.memory_timer_due_s_size() == 40);
}

}  // namespace
}  // namespace tend
