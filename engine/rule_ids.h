// RuleIds: the rule ids of timers interned as numbers, for the engine's timer index. Internal to
// engine/.
#ifndef TEND_ENGINE_RULE_IDS_H_
#define TEND_ENGINE_RULE_IDS_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "rules/rules.h"

namespace tend {

// The rule ids of timers, interned, so the timer index holds a number per timer instead of a
// string. The rule set's ids come first, in id order: ordering by number is ordering by id, so
// two timers of a patient due the same second fire in the same order in every run with these
// rules. Ids met only in stored timers (rules since removed; their timers fire nothing) follow.
// Thread safety: Intern() on the engine thread only; the strings returned never move and may be
// read from any thread while the RuleIds lives.
class RuleIds {
 public:
  explicit RuleIds(const RuleSet* rules) {
    if (rules == nullptr) return;
    std::vector<std::string> ids;
    for (const CompiledRule& r : rules->rules()) ids.push_back(r.rule.id());
    std::sort(ids.begin(), ids.end());
    for (const std::string& id : ids) Intern(id);
  }
  uint32_t Intern(absl::string_view id) {
    auto [it, added] = index_.try_emplace(id, static_cast<uint32_t>(names_.size()));
    if (added) names_.emplace_back(id);
    return it->second;
  }
  const std::string& Name(uint32_t i) const { return names_[i]; }

 private:
  absl::flat_hash_map<std::string, uint32_t> index_;
  std::deque<std::string> names_;  // a deque: elements stay put as it grows
};

}  // namespace tend

#endif  // TEND_ENGINE_RULE_IDS_H_
