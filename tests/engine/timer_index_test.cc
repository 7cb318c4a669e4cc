// A partition's timer index (engine/timer_index.h) without a broker: loaded from a real RocksDB
// directory, armed and disarmed, and popped in due order as the clock passes.
#include "engine/timer_index.h"

#include <catch2/catch.hpp>

#include <iterator>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
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

TEST_CASE("the timers due next are seen in the order they will fire, without firing them",
          "[timers]") {
  RuleIds ids(nullptr);
  TimerIndex index;  // no storage: every timer in memory
  index.Arm(300, "p-c", ids.Intern("daily-checkin"));
  index.Arm(100, "p-b", ids.Intern("daily-checkin"));
  index.Arm(100, "p-a", ids.Intern("daily-checkin"));
  index.Arm(900, "p-d", ids.Intern("daily-checkin"));
  auto peek = [&](int64_t now_s) {
    const std::string* next[3] = {};
    index.PeekDue(now_s, absl::MakeSpan(next));
    std::vector<std::string> out;
    for (const std::string* p : next) out.push_back(p == nullptr ? "-" : *p);
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(peek(99) == V{"-", "-", "-"});
  CHECK(peek(100) == V{"p-a", "p-b", "-"});  // not p-c: due later
  CHECK(peek(1000) == V{"p-a", "p-b", "p-c"});
  CHECK(index.size() == 4);  // nothing fired
  TimerIndex::Timer t;
  REQUIRE(index.PopDue(1000, &t));
  CHECK(t.patient_id == "p-a");
  CHECK(peek(1000) == V{"p-b", "p-c", "p-d"});
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

TEST_CASE("timers read from storage a window at a time fire exactly as if all were in memory, "
          "whatever is armed, moved and written between windows",
          "[timers]") {
  // The engine's use, at random: timers armed and disarmed at and after the clock, the changes
  // written to storage at random points (a commit) and pending in between, the clock moving on
  // and firing what is due, the next window read when the clock reaches the horizon. A plain
  // ordered set is the reference.
  std::mt19937_64 rng(17);
  for (int round = 0; round < 40; ++round) {
    testing::TempDir dir;
    auto storage = Storage::Open(dir.Sub("db"));
    REQUIRE(storage.ok());
    RuleIds ids(nullptr);
    const std::vector<std::string> rules = {"r-a", "r-b", "r-c"};
    for (const auto& r : rules) ids.Intern(r);
    // Timers already in storage when the partition is assigned.
    std::set<std::tuple<int64_t, std::string, std::string>> reference;
    {
      StateBatch batch = (*storage)->NewBatch();
      for (int i = 0; i < 200; ++i) {
        const int64_t due = 1000 + static_cast<int64_t>(rng() % 3000);
        const std::string patient = absl::StrCat("p", rng() % 50);
        const std::string& rule = rules[rng() % rules.size()];
        batch.PutTimer(0, due, patient, rule);
        reference.emplace(due, patient, rule);
      }
      REQUIRE((*storage)->Commit(&batch).ok());
    }
    TimerIndex index(1 + rng() % 12);
    REQUIRE(index.Load(**storage, 0, &ids).ok());
    std::vector<TimerOp> pending;
    // A TimerOp refers to its patient id (the engine's are on the commit's arena).
    std::set<std::string> kept;
    auto keep = [&](const std::string& id) -> absl::string_view { return *kept.insert(id).first; };
    auto commit = [&] {
      StateBatch batch = (*storage)->NewBatch();
      for (const TimerOp& op : pending) {
        if (op.put) {
          batch.PutTimer(0, op.due_s, op.patient_id, *op.rule_id);
        } else {
          batch.DeleteTimer(0, op.due_s, op.patient_id, *op.rule_id);
        }
      }
      REQUIRE((*storage)->Commit(&batch).ok());
      pending.clear();
    };
    int64_t clock = 900;
    std::vector<std::tuple<int64_t, std::string, std::string>> fired, expected;
    for (int step = 0; step < 300; ++step) {
      const int what = static_cast<int>(rng() % 10);
      if (what < 4) {  // arm, at the clock or later
        const int64_t due = clock + static_cast<int64_t>(rng() % 1500);
        const std::string patient = absl::StrCat("p", rng() % 50);
        const uint32_t rule = static_cast<uint32_t>(rng() % rules.size());
        if (reference.emplace(due, patient, ids.Name(rule)).second) {
          index.Arm(due, patient, rule);
          pending.push_back({0, due, keep(patient), &ids.Name(rule), true});
        }
      } else if (what < 6 && !reference.empty()) {  // disarm one (a move's first half)
        auto it = reference.begin();
        std::advance(it, rng() % reference.size());
        const auto [due, patient, rule] = *it;
        index.Disarm(due, patient, ids.Intern(rule));
        pending.push_back({0, due, keep(patient), &ids.Name(ids.Intern(rule)), false});
        reference.erase(it);
      } else if (what < 7) {
        commit();
      } else {  // the clock moves on: everything due fires, in order
        clock += static_cast<int64_t>(rng() % 400);
        while (!reference.empty() && std::get<0>(*reference.begin()) <= clock) {
          expected.push_back(*reference.begin());
          reference.erase(reference.begin());
        }
        TimerIndex::Timer t;
        for (;;) {
          if (!index.PopDue(clock, &t)) {
            if (!index.Behind(clock)) break;
            REQUIRE(index.Load(**storage, 0, &ids, pending).ok());
            continue;
          }
          fired.emplace_back(t.due_s, t.patient_id, ids.Name(t.rule));
          pending.push_back({0, t.due_s, keep(t.patient_id), &ids.Name(t.rule), false});
        }
      }
    }
    INFO("round " << round);
    REQUIRE(fired == expected);
    CHECK(fired.size() > 100);
  }
}

}  // namespace
}  // namespace tend
