// A partition's timer index (engine/timer_index.h) without a broker: loaded from a real RocksDB
// directory, armed and disarmed, and popped in due order as the clock passes.
#include "engine/timer_index.h"

#include <catch2/catch.hpp>

#include <string>
#include <tuple>
#include <vector>

#include "tests/temp_dir.h"

namespace tend {
namespace {

// What PopDue gives up to `now_s`: (due, patient, rule id) in order.
std::vector<std::tuple<int64_t, std::string, std::string>> PopAll(TimerIndex* index,
                                                                  const RuleIds& ids,
                                                                  int64_t now_s) {
  std::vector<std::tuple<int64_t, std::string, std::string>> out;
  TimerIndex::Timer t;
  while (index->PopDue(now_s, &t)) out.emplace_back(t.due_s, t.patient_id, ids.Name(t.rule));
  return out;
}

TEST_CASE("a partition's timers load from storage and fire in due order as the clock passes",
          "[timers]") {
  testing::TempDir dir;
  auto storage = Storage::Open(dir.Sub("db"));
  REQUIRE(storage.ok());
  {
    StateBatch batch = (*storage)->NewBatch();
    batch.PutTimer(0, 300, "p-b", "no-bp-3d");
    batch.PutTimer(0, 100, "p-a", "inactive-7d");
    batch.PutTimer(0, 300, "p-a", "no-bp-3d");
    batch.PutTimer(1, 50, "p-other-partition", "no-bp-3d");
    REQUIRE((*storage)->Commit(&batch).ok());
  }
  RuleIds ids(nullptr);
  TimerIndex index;
  REQUIRE(index.Load(**storage, 0, &ids).ok());
  CHECK(index.size() == 3);  // partition 1's timer is not this partition's

  // Nothing is due before the clock reaches it.
  CHECK(PopAll(&index, ids, 99).empty());
  // Armed after loading, disarmed before it fires.
  index.Arm(200, "p-c", ids.Intern("daily-checkin"));
  index.Arm(250, "p-d", ids.Intern("daily-checkin"));
  index.Disarm(250, "p-d", ids.Intern("daily-checkin"));
  index.Disarm(999, "p-nobody", ids.Intern("daily-checkin"));  // not armed: nothing happens

  using T = std::tuple<int64_t, std::string, std::string>;
  CHECK(PopAll(&index, ids, 200) ==
        std::vector<T>{{100, "p-a", "inactive-7d"}, {200, "p-c", "daily-checkin"}});
  // The same second: by patient.
  CHECK(PopAll(&index, ids, 1000) ==
        std::vector<T>{{300, "p-a", "no-bp-3d"}, {300, "p-b", "no-bp-3d"}});
  CHECK(index.empty());
}

TEST_CASE("timers of one patient due the same second fire in rule-id order", "[timers]") {
  auto rules = RuleSet::Parse(R"(
rules:
  - id: zz-last
    version: 1
    trigger: {absence: {kind: check_in, after: 1d}}
    action: {task: {template_id: t}}
    policy: {category: CARE, priority: 1, ttl: 1h}
  - id: aa-first
    version: 1
    trigger: {absence: {kind: message, after: 1d}}
    action: {task: {template_id: t}}
    policy: {category: CARE, priority: 1, ttl: 1h}
)",
                              "test");
  REQUIRE(rules.ok());
  RuleIds ids(&*rules);
  TimerIndex index;
  index.Arm(100, "p-1", ids.Intern("zz-last"));
  index.Arm(100, "p-1", ids.Intern("aa-first"));
  using T = std::tuple<int64_t, std::string, std::string>;
  CHECK(PopAll(&index, ids, 100) ==
        std::vector<T>{{100, "p-1", "aa-first"}, {100, "p-1", "zz-last"}});
}

}  // namespace
}  // namespace tend
