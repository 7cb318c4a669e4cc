// Specs of rules/decide.h: which rules fire on an event and what each global policy makes of
// them — each policy in isolation, quiet hours across DST changes, arbitration under a cap.
#include "rules/decide.h"

#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/yaml_proto.h"
#include "projections/config.h"
#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend {
namespace {

const char* kRules = R"(
rules:
  - id: welcome
    version: 2
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: welcome, channel: CHAT, parameters: {channel: "{event.scan.channel_id}", fixed: hello}}}
    policy: {category: CARE, priority: 40, ttl: 2h}
  - id: care-b
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: b, channel: CHAT}}
    policy: {category: CARE, priority: 35, ttl: 48h}
  - id: care-c
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: c, channel: CHAT}}
    policy: {category: CARE, priority: 30, ttl: 48h}
  - id: offer
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: offer, channel: CHAT}}
    policy: {category: MARKETING, priority: 10, ttl: 48h}
  - id: high-glucose
    version: 1
    trigger: {event: {kind: check_in, filter: {compare: {field: event.check_in.kind, op: EQ, value: GLUCOSE}}}}
    when: {compare: {field: event.check_in.glucose.mmol_per_l, op: GT, value: "10"}}
    action: {task: {template_id: glucose-review, parameters: {value: "{event.check_in.glucose.mmol_per_l}"}}}
    policy: {category: CLINICAL, priority: 90, ttl: 24h}
  - id: streak-3
    version: 1
    trigger: {became: {compare: {field: patient.adherence.current_streak, op: GE, value: "3"}}}
    action: {reminder: {template_id: streak, channel: CHAT}}
    policy: {category: CLINICAL, priority: 50, cooldown: 7d, ttl: 12h}
  - id: no-bp-3d
    version: 1
    trigger:
      absence:
        kind: check_in
        filter: {compare: {field: event.check_in.kind, op: EQ, value: BLOOD_PRESSURE}}
        after: 3d
    action: {reminder: {template_id: bp-nudge, channel: CHAT}}
    policy: {category: CLINICAL, priority: 50, ttl: 24h}
  - id: daily
    version: 1
    trigger: {schedule: {at: "09:00", program_id: diabetes}}
    when: {compare: {field: patient.adherence.checked_in_today, op: EQ, value: "false"}}
    action: {reminder: {template_id: daily, channel: CHAT, parameters: {streak: "{patient.adherence.current_streak}"}}}
    policy: {category: CARE, priority: 10, ttl: 6h}
)";

const RuleSet& Rules() {
  static const RuleSet* rules = [] {
    auto r = RuleSet::Parse(kRules, "test-rules");
    if (!r.ok()) std::abort();
    return new RuleSet(*std::move(r));
  }();
  return *rules;
}

using testing::At;

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(name, &tz)) std::abort();
  return tz;
}

// One patient through the rules, as the engine runs them: each event is folded into a real
// state (projections::Apply) and decided at the partition clock; timers due by then fire first,
// in due order.
struct Patient {
  projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  const RuleSet* rules = &Rules();
  PolicyOptions policy;
  v1::PatientState state;
  DecideOutput out;  // of the last call
  std::vector<v1::ReminderCommand> all_commands;
  std::vector<v1::Decision> all_decisions;
  RuleMemoryIndex* memories = nullptr;  // given to every decision when set
  int events = 0;
  std::string id = "p-1";
  std::vector<const RuleSet*> used;  // every rule set decided with
  // Ids of rules no set here has, whose memories a test gives the patient.
  std::vector<std::string> retired = {"retired-rule"};
  // Timers fire as the engine fires them: the patient's alarm, at its earliest timer, fires every
  // timer due that second (DecideOnTimersDue). Else one rule's timer at a time, by (due, rule id).
  bool alarms = false;
  int timer_calls = 0;  // DecideOnTimer or DecideOnTimersDue calls
  // As the engine decides: one output for every call, emptied (DecideOutput::Clear), and views
  // built in one kept scratch with the patient's active days summarised. Else a new output per
  // call and a view of its own each time.
  bool as_engine = true;
  LazyView::Scratch scratch;
  std::string zone;
  projections::ActiveDaySummary days;

  // A view of the state at `now` into *view, as the engine makes it or anew (as_engine).
  void MakeView(absl::Time now, std::optional<LazyView>* view) {
    if (!as_engine) {
      view->emplace(config, state, now);
      return;
    }
    const absl::TimeZone tz = projections::PatientTimeZone(config, state, &zone);
    days = projections::SummariseActiveDays(state.engagement().activity_slots(), tz);
    view->emplace(config, state, now, tz, zone, &days, &scratch);
  }
  // Empties `out` for the next call: Clear, or a new output (the old one destroyed).
  void NewOutput() {
    if (as_engine) {
      out.Clear();
    } else {
      out.~DecideOutput();
      new (&out) DecideOutput();
    }
  }

  // The id of the rule a memory row names (RuleFingerprint).
  std::string IdOf(uint64_t fingerprint) const {
    for (const RuleSet* set : used) {  // the rules now, or a set decided with before
      if (const int pos = set->FindFingerprint(fingerprint); pos >= 0) {
        return set->rules()[pos].rule.id();
      }
    }
    for (const std::string& r : retired) {
      if (RuleFingerprint(r) == fingerprint) return r;
    }
    FAIL("a memory of an unknown rule");
    return "";
  }

  DecideInput Input(absl::Time now, LazyView* view) {
    if (std::find(used.begin(), used.end(), rules) == used.end()) used.push_back(rules);
    DecideInput in;
    in.state = &state;
    in.now = now;
    in.tz = view->tz();
    in.view = view;
    in.memories = memories;
    return in;
  }
  void Keep() {
    all_commands.insert(all_commands.end(), out.commands.begin(), out.commands.end());
    all_decisions.insert(all_decisions.end(), out.decisions.begin(), out.decisions.end());
  }

  // Fires the timers due at or before `now`.
  void Tick(const std::string& now_text) {
    const absl::Time now = At(now_text);
    NewOutput();
    for (int fired = 0;; ++fired) {
      REQUIRE(fired < 1000);  // a timer that stays armed at its due time would fire forever
      if (alarms) {
        const int64_t due = EarliestTimer(state.rules());
        if (due == 0 || due > absl::ToUnixSeconds(now)) break;
        std::optional<LazyView> view;
        MakeView(now, &view);
        ++timer_calls;
        DecideOnTimersDue(*rules, policy, Input(now, &*view), due, state.mutable_rules(), &out);
        continue;
      }
      // The earliest armed timer (ties: by rule id).
      std::optional<std::pair<int64_t, std::string>> next;
      const v1::RulesState& memories = state.rules();
      for (int row = 0; row < memories.memory_rule_size(); ++row) {
        const int64_t due = memories.memory_timer_due_s(row);
        if (due == 0) continue;
        auto timer = std::make_pair(due, IdOf(memories.memory_rule(row)));
        if (!next.has_value() || timer < *next) next = std::move(timer);
      }
      if (!next.has_value() || next->first > absl::ToUnixSeconds(now)) break;
      const std::string rule = next->second;
      const int64_t due = next->first;
      std::optional<LazyView> view;
      MakeView(now, &view);
      ++timer_calls;
      DecideOnTimer(*rules, policy, Input(now, &*view), rule, due, state.mutable_rules(), &out);
    }
    Keep();
  }

  // The event happened at `occurred` (default: when recorded) and was recorded at `now`.
  void Fold(v1::Event e, const std::string& now_text, const std::string& occurred = "") {
    Tick(now_text);
    const std::vector<v1::Decision> timer_decisions(out.decisions.begin(), out.decisions.end());
    const absl::Time now = At(now_text);
    e.set_patient_id(id);
    e.mutable_recorded_at()->set_seconds(absl::ToUnixSeconds(now));
    e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(occurred.empty() ? now : At(occurred)));
    const bool first = state.unique_events() == 0;
    projections::Apply(config, e, &state);
    std::optional<LazyView> view;
    MakeView(now, &view);
    DecideInput in = Input(now, &*view);
    in.event = &e;
    in.first_event = first;
    NewOutput();
    DecideOnEvent(*rules, policy, in, state.mutable_rules(), &out);
    Keep();
    for (const auto& d : timer_decisions) *out.decisions.Add() = d;
  }
};

// The rule's armed timer (unix seconds), 0 when none.
int64_t TimerOf(const Patient& p, const std::string& rule) {
  return ReadRuleMemory(p.state.rules(), rule).timer_due_s;
}

v1::Event Scan(const std::string& id, const std::string& staff = "staff-7") {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_scan()->set_channel_id("pharmacy");
  e.mutable_scan()->set_staff_id(staff);
  return e;
}

v1::Event Glucose(const std::string& id, double mmol) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
  e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(mmol);
  return e;
}

v1::Event BloodPressure(const std::string& id) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_check_in()->set_kind(v1::CheckIn::BLOOD_PRESSURE);
  e.mutable_check_in()->mutable_blood_pressure()->set_systolic_mmhg(120);
  e.mutable_check_in()->mutable_blood_pressure()->set_diastolic_mmhg(80);
  return e;
}

v1::Event Enroll(const std::string& id, const std::string& program, const std::string& zone) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_enrollment()->set_program_id(program);
  e.mutable_enrollment()->set_time_zone(zone);
  return e;
}

v1::Event Removed(const std::string& id) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_contact_removed()->set_staff_id("staff-7");
  return e;
}

v1::Event Consent(const std::string& id, v1::ConsentChanged::Purpose purpose, bool granted) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_consent_changed()->set_purpose(purpose);
  e.mutable_consent_changed()->set_granted(granted);
  return e;
}

v1::Event PatientSays(const std::string& id, const std::string& keyword) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_message()->set_direction(v1::Message::PATIENT_TO_STAFF);
  e.mutable_message()->add_keywords(keyword);
  return e;
}

const v1::Decision* DecisionOf(const DecideOutput& out, const std::string& rule) {
  for (const auto& d : out.decisions) {
    if (d.rule_id() == rule) return &d;
  }
  return nullptr;
}
const v1::Decision* DecisionOf(const Patient& p, const std::string& rule) {
  return DecisionOf(p.out, rule);
}

TEST_CASE("an event fires its rules: automated reminders with deterministic ids and the values "
          "behind them",
          "[decide]") {
  Patient p;
  p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  REQUIRE(p.out.commands.size() == 3);  // welcome, care-b + offer; care-c loses the CARE cap
  const v1::ReminderCommand& c = p.out.commands[0];
  CHECK(c.rule_id() == "welcome");
  CHECK(c.rule_version() == 2);
  CHECK(c.recipient() == v1::ReminderCommand::PATIENT);
  CHECK(c.automated());
  CHECK(c.channel() == v1::CHAT);
  CHECK(c.parameters().at("channel") == "pharmacy");
  CHECK(c.parameters().at("fixed") == "hello");
  CHECK(c.not_before().seconds() == absl::ToUnixSeconds(At("2026-05-01T10:00:00+08:00")));
  CHECK(c.expires_at().seconds() == absl::ToUnixSeconds(At("2026-05-01T12:00:00+08:00")));
  CHECK(c.not_before().nanos() == 0);
  CHECK(c.trigger_event_id() == "s1");
  for (const v1::Decision& d : p.out.decisions) {  // the partition clock when decided
    CHECK(d.at().seconds() == absl::ToUnixSeconds(At("2026-05-01T10:00:00+08:00")));
  }
  CHECK(c.command_id() == CommandId("welcome", 2, "p-1", "event:s1"));
  CHECK(c.command_id().size() == 32);
  // Stable forever: receivers dedupe on it, and a replay must reproduce it.
  CHECK(CommandId("daily-checkin", 1, "p-000042", "schedule:2026-05-01") ==
        "673de7d4b6efc8b548dc97ad55632f8f");
  CHECK(CommandId("welcome", 2, "p-1", "event:s2") != c.command_id());
  CHECK(CommandId("welcome", 3, "p-1", "event:s1") != c.command_id());
  CHECK(DecisionOf(p, "welcome")->outcome() == v1::Decision::FIRED);
  CHECK(DecisionOf(p, "welcome")->command_id() == c.command_id());

  // A task for the assigned health manager (from the scan), with the conditions and values.
  p.Fold(Glucose("g1", 12.5), "2026-05-01T11:00:00+08:00");
  REQUIRE(p.out.commands.size() == 1);
  const v1::ReminderCommand& task = p.out.commands[0];
  CHECK(task.recipient() == v1::ReminderCommand::STAFF);
  CHECK(task.staff_id() == "staff-7");
  CHECK_FALSE(task.automated());
  CHECK(task.parameters().at("value") == "12.5");
  REQUIRE(task.explanation().checks_size() == 2);
  CHECK(task.explanation().checks(1).field() == "event.check_in.glucose.mmol_per_l");
  CHECK(task.explanation().checks(1).actual() == "12.5");
  CHECK(task.explanation().checks(1).held());

  // The trigger fired but the condition did not hold: recorded, no command.
  p.Fold(Glucose("g2", 6.0), "2026-05-01T12:00:00+08:00");
  CHECK(p.out.commands.empty());
  CHECK(DecisionOf(p, "high-glucose")->reason() == v1::Decision::CONDITIONS);
  CHECK(DecisionOf(p, "high-glucose")->explanation().checks(1).actual() == "6");
}

TEST_CASE("priority arbitration under the daily cap, deterministic, losers recorded", "[decide]") {
  Patient p;
  p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(DecisionOf(p, "welcome")->outcome() == v1::Decision::FIRED);  // priority 40
  CHECK(DecisionOf(p, "care-b")->outcome() == v1::Decision::FIRED);   // 35
  CHECK(DecisionOf(p, "care-c")->outcome() == v1::Decision::SUPPRESSED);
  CHECK(DecisionOf(p, "care-c")->reason() == v1::Decision::PRIORITY);
  CHECK(SentOn(p.state.rules(), absl::CivilDay(2026, 5, 1), v1::CARE) == 2);
  // Later the same local day the cap is simply full; the next day it is not.
  p.Fold(Scan("s2"), "2026-05-01T20:00:00+08:00");
  CHECK(DecisionOf(p, "welcome")->reason() == v1::Decision::CAP);
  p.Fold(Scan("s3"), "2026-05-02T09:00:00+08:00");
  CHECK(DecisionOf(p, "welcome")->outcome() == v1::Decision::FIRED);
  // A cap of 1 gives the slot to the highest priority, whatever the rule order in the file.
  Patient other;
  other.policy.daily_cap[v1::CARE] = 1;
  other.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(DecisionOf(other, "welcome")->outcome() == v1::Decision::FIRED);
  CHECK(DecisionOf(other, "care-b")->reason() == v1::Decision::PRIORITY);
}

TEST_CASE("arbitration goes by priority, not by the order of the rules file, and equal priorities "
          "by rule id",
          "[decide]") {
  // Listed lowest priority first, the winner last, and the tied pair in reverse id order.
  auto rules = RuleSet::Parse(R"(
rules:
  - id: low
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: low, channel: CHAT}}
    policy: {category: CARE, priority: 10, ttl: 48h}
  - id: tie-b
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: tie-b, channel: CHAT}}
    policy: {category: CARE, priority: 30, ttl: 48h}
  - id: tie-a
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: tie-a, channel: CHAT}}
    policy: {category: CARE, priority: 30, ttl: 48h}
  - id: high
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: high, channel: CHAT}}
    policy: {category: CARE, priority: 50, ttl: 48h}
)", "reversed");
  REQUIRE(rules.ok());
  auto sent = [](const Patient& p) {
    std::vector<std::string> ids;
    for (const auto& c : p.out.commands) ids.push_back(c.rule_id());
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  for (int cap : {1, 2, 3}) {
    INFO("daily CARE cap " << cap);
    Patient p;
    p.rules = &*rules;
    p.policy.daily_cap[v1::CARE] = cap;
    p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
    std::vector<std::string> expected = {"high", "tie-a", "tie-b"};
    expected.resize(static_cast<size_t>(cap));
    std::sort(expected.begin(), expected.end());
    CHECK(sent(p) == expected);
    CHECK(DecisionOf(p, "low")->reason() == v1::Decision::PRIORITY);
    CHECK(DecisionOf(p, "high")->outcome() == v1::Decision::FIRED);
    if (cap == 2) CHECK(DecisionOf(p, "tie-b")->reason() == v1::Decision::PRIORITY);
  }
  // Two firings at once, the lower listed first, are ordered too (one alone needs no sort).
  auto pair = RuleSet::Parse(R"(
rules:
  - id: low
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: low, channel: CHAT}}
    policy: {category: CARE, priority: 10, ttl: 48h}
  - id: high
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: high, channel: CHAT}}
    policy: {category: CARE, priority: 50, ttl: 48h}
)", "pair");
  REQUIRE(pair.ok());
  Patient p;
  p.rules = &*pair;
  p.policy.daily_cap[v1::CARE] = 1;
  p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(sent(p) == std::vector<std::string>{"high"});
  CHECK(DecisionOf(p, "low")->reason() == v1::Decision::PRIORITY);
}

TEST_CASE("quiet hours defer a reminder to their end, or drop it when its time to live ends first",
          "[decide]") {
  Patient p;
  p.Fold(Scan("s1"), "2026-05-01T22:30:00+08:00");
  CHECK(DecisionOf(p, "welcome")->reason() == v1::Decision::QUIET_HOURS_EXPIRED);  // ttl 2h
  const v1::Decision* b = DecisionOf(p, "care-b");
  CHECK(b->outcome() == v1::Decision::DEFERRED);
  const v1::ReminderCommand& cmd = p.out.commands[0];
  CHECK(cmd.rule_id() == "care-b");
  CHECK(cmd.not_before().seconds() == absl::ToUnixSeconds(At("2026-05-02T08:00:00+08:00")));
  // Counted on the day it goes out.
  CHECK(SentOn(p.state.rules(), absl::CivilDay(2026, 5, 2), v1::CARE) == 2);  // b and c
  // Just after midnight, too; tasks for staff are not held back.
  p.Fold(Glucose("g1", 15), "2026-05-03T00:30:00+08:00");
  CHECK(p.out.commands[0].not_before().seconds() ==
        absl::ToUnixSeconds(At("2026-05-03T00:30:00+08:00")));
}

TEST_CASE("quiet hours follow the patient's clock across DST changes", "[decide]") {
  const PolicyOptions policy;
  const absl::TimeZone ny = Zone("America/New_York");
  // Sat Mar 7 2026 23:00 EST: the window ends Sun Mar 8 08:00, which is EDT (-04:00) by then.
  CHECK(QuietHoursEnd(policy, At("2026-03-07T23:00:00-05:00"), ny) ==
        At("2026-03-08T08:00:00-04:00"));
  // Sat Oct 31 23:00 EDT: ends Sun Nov 1 08:00 EST (-05:00).
  CHECK(QuietHoursEnd(policy, At("2026-10-31T23:00:00-04:00"), ny) ==
        At("2026-11-01T08:00:00-05:00"));
  // 01:30 on the night clocks go back is inside the window either time it happens.
  CHECK(QuietHoursEnd(policy, At("2026-11-01T01:30:00-05:00"), ny) ==
        At("2026-11-01T08:00:00-05:00"));
  // Outside the window nothing moves.
  CHECK(QuietHoursEnd(policy, At("2026-03-09T12:00:00-04:00"), ny) ==
        At("2026-03-09T12:00:00-04:00"));
  // A patient whose calendar is New York (from the enrollment).
  Patient p;
  p.Fold(Enroll("e1", "hypertension", "America/New_York"), "2026-03-07T20:00:00-05:00");
  p.Fold(Scan("s1"), "2026-03-07T23:00:00-05:00");
  CHECK(p.out.commands[0].not_before().seconds() ==
        absl::ToUnixSeconds(At("2026-03-08T08:00:00-04:00")));
}

TEST_CASE("quiet hours: their edges, and both 01:30s of the night clocks go back", "[decide]") {
  const PolicyOptions policy;  // 21:00 - 08:00
  const absl::TimeZone sh = Zone("Asia/Shanghai");
  CHECK(QuietHoursEnd(policy, At("2026-05-01T20:59:59+08:00"), sh) == At("2026-05-01T20:59:59+08:00"));
  CHECK(QuietHoursEnd(policy, At("2026-05-01T21:00:00+08:00"), sh) == At("2026-05-02T08:00:00+08:00"));
  CHECK(QuietHoursEnd(policy, At("2026-05-02T00:00:00+08:00"), sh) == At("2026-05-02T08:00:00+08:00"));
  CHECK(QuietHoursEnd(policy, At("2026-05-02T07:59:00+08:00"), sh) == At("2026-05-02T08:00:00+08:00"));
  CHECK(QuietHoursEnd(policy, At("2026-05-02T08:00:00+08:00"), sh) == At("2026-05-02T08:00:00+08:00"));
  // New York, Nov 1 2026: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST); both are
  // inside the window, which ends at 08:00 EST.
  const absl::TimeZone ny = Zone("America/New_York");
  CHECK(QuietHoursEnd(policy, At("2026-11-01T01:30:00-04:00"), ny) == At("2026-11-01T08:00:00-05:00"));
  CHECK(QuietHoursEnd(policy, At("2026-11-01T01:30:00-05:00"), ny) == At("2026-11-01T08:00:00-05:00"));
}

// Zones of every kind for the properties below: DST both ways, 45- and 30-minute offsets and a
// 30-minute DST, a skipped day, negative DST, and local mean time before 1900 (offsets in
// seconds).
constexpr const char* kZoneKinds[] = {"America/New_York",    "Asia/Shanghai",   "Asia/Kathmandu",
                                      "Australia/Lord_Howe", "Pacific/Chatham", "Pacific/Apia",
                                      "Europe/Dublin",       "America/St_Johns", "UTC"};

// A whole second from 1850 to 2100.
int64_t RandomSecond(std::mt19937_64& rng) {
  return -3'786'825'600 + static_cast<int64_t>(rng() % 7'889'400'000ULL);
}

TEST_CASE("quiet hours by the zone's cached offsets end where absl's civil minutes say, in every kind of zone",
          "[decide]") {
  // The oracle: the window read from absl::ToCivilMinute, as QuietHoursEnd did before it took the
  // minute from projections::OffsetAt.
  auto oracle = [](const PolicyOptions& p, absl::Time t, const absl::TimeZone& tz) {
    const absl::CivilMinute local = absl::ToCivilMinute(t, tz);
    const int minute = local.hour() * 60 + local.minute();
    const bool quiet = p.quiet_start_minute < p.quiet_end_minute
                           ? minute >= p.quiet_start_minute && minute < p.quiet_end_minute
                           : p.quiet_start_minute != p.quiet_end_minute &&
                                 (minute >= p.quiet_start_minute || minute < p.quiet_end_minute);
    if (!quiet) return t;
    absl::CivilDay day(local);
    if (p.quiet_start_minute > p.quiet_end_minute && minute >= p.quiet_start_minute) day += 1;
    return absl::FromCivil(absl::CivilMinute(day.year(), day.month(), day.day(),
                                             p.quiet_end_minute / 60, p.quiet_end_minute % 60),
                           tz);
  };
  PolicyOptions windows[4];
  windows[1].quiet_start_minute = 60;  // 01:00 - 06:30, not across midnight
  windows[1].quiet_end_minute = 390;
  windows[2].quiet_start_minute = 0;  // none
  windows[2].quiet_end_minute = 0;
  windows[3].quiet_start_minute = 23 * 60 + 59;  // one minute a day
  windows[3].quiet_end_minute = 0;
  std::mt19937_64 rng(17);
  int checked = 0;
  for (const char* name : kZoneKinds) {
    const absl::TimeZone tz = Zone(name);
    for (int i = 0; i < 4000; ++i) {
      // 1850 to 2100; every fourth time on a minute's edge or a second either side of it.
      int64_t s = RandomSecond(rng);
      if (i % 4 == 0) {  // on a local minute's edge (LMT offsets have seconds), or a second off
        const int64_t local_s = s + tz.At(absl::FromUnixSeconds(s)).offset;
        s -= local_s - (local_s / 60 - (local_s % 60 < 0 ? 1 : 0)) * 60;
        s += static_cast<int64_t>(rng() % 3) - 1;
      }
      const absl::Time t = absl::FromUnixSeconds(s);
      for (const PolicyOptions& p : windows) {
        INFO(name << " " << absl::FormatTime(t) << " window " << p.quiet_start_minute << "-"
                  << p.quiet_end_minute);
        REQUIRE(QuietHoursEnd(p, t, tz) == oracle(p, t, tz));
        ++checked;
      }
    }
  }
  CHECK(checked == 9 * 4000 * 4);
  // Minute by minute across New York's 2026 DST changes (the spans each thread keeps, reused).
  const absl::TimeZone ny = Zone("America/New_York");
  for (const char* change : {"2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"}) {
    for (absl::Time t = At(change) - absl::Hours(12); t < At(change) + absl::Hours(12);
         t += absl::Seconds(59)) {
      for (const PolicyOptions& p : windows) {
        INFO(absl::FormatTime(t) << " window " << p.quiet_start_minute);
        REQUIRE(QuietHoursEnd(p, t, ny) == oracle(p, t, ny));
      }
    }
  }
  // Beyond the spans and the fast path's range: absl's answer, in or out of the window.
  const absl::TimeZone sh = Zone("Asia/Shanghai");
  for (int64_t s : {int64_t{1} << 40, (int64_t{1} << 40) - 1, (int64_t{1} << 40) + 43'200,
                    -(int64_t{1} << 40), -(int64_t{1} << 40) + 1, int64_t{1'200'000'000'000},
                    int64_t{-1'200'000'000'000}}) {
    for (const PolicyOptions& p : windows) {
      INFO(s << " window " << p.quiet_start_minute);
      REQUIRE(QuietHoursEnd(p, absl::FromUnixSeconds(s), sh) ==
              oracle(p, absl::FromUnixSeconds(s), sh));
    }
  }
}

TEST_CASE("a schedule's next local time by the zone's cached offsets is absl's civil answer, in "
          "every kind of zone",
          "[decide]") {
  // The oracle: NextLocalTime as it was before its fast path, absl::FromCivil day by day.
  auto oracle = [](absl::Time t, int minute, const absl::TimeZone& tz) {
    absl::CivilDay day = absl::ToCivilDay(t, tz);
    for (int i = 0; i < 3; ++i, ++day) {
      const absl::Time next = absl::FromCivil(
          absl::CivilMinute(day.year(), day.month(), day.day(), minute / 60, minute % 60), tz);
      if (next > t) return next;
    }
    return t + absl::Hours(24);
  };
  std::mt19937_64 rng(18);
  int checked = 0;
  for (const char* name : kZoneKinds) {
    const absl::TimeZone tz = Zone(name);
    for (int i = 0; i < 6000; ++i) {
      // 1850 to 2100; every third time within two days of one of the zone's transitions.
      int64_t s = RandomSecond(rng);
      absl::TimeZone::CivilTransition change;
      if (i % 3 == 0 && tz.NextTransition(absl::FromUnixSeconds(s), &change)) {
        s = absl::ToUnixSeconds(absl::FromCivil(change.to, tz)) +
            static_cast<int64_t>(rng() % 345'600) - 172'800;
      }
      // A time on a second, or within one; minutes at the day's ends and at DST's usual hours.
      const absl::Time t = absl::FromUnixSeconds(s) + absl::Milliseconds(i % 2 ? 0 : 500);
      const int picks[] = {0, 1439, 60, 90, 120, 150, 180, static_cast<int>(rng() % 1440)};
      const int minute = picks[rng() % 8];
      INFO(name << " " << absl::FormatTime(t) << " minute " << minute);
      REQUIRE(NextLocalTime(t, minute, tz) == oracle(t, minute, tz));
      ++checked;
    }
  }
  CHECK(checked == 9 * 6000);
  // Minute by minute across New York's 2026 DST changes, for 01:30, 02:30 and 09:00.
  const absl::TimeZone ny = Zone("America/New_York");
  for (const char* change : {"2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"}) {
    for (absl::Time t = At(change) - absl::Hours(60); t < At(change) + absl::Hours(60);
         t += absl::Seconds(59)) {
      for (int minute : {90, 150, 540}) {
        INFO(absl::FormatTime(t) << " minute " << minute);
        REQUIRE(NextLocalTime(t, minute, ny) == oracle(t, minute, ny));
      }
    }
  }
  // Beyond the spans' range: absl's answer.
  const absl::TimeZone sh = Zone("Asia/Shanghai");
  for (int64_t s : {int64_t{10'413'792'000}, int64_t{-5'364'662'401}, int64_t{1} << 40}) {
    REQUIRE(NextLocalTime(absl::FromUnixSeconds(s), 540, sh) ==
            oracle(absl::FromUnixSeconds(s), 540, sh));
  }
}

TEST_CASE("a schedule whose local time is skipped or repeated by DST fires once that day",
          "[decide]") {
  auto rules = RuleSet::Parse(R"(
rules:
  - id: night
    version: 1
    trigger: {schedule: {at: "02:30"}}
    action: {task: {template_id: night-check}}
    policy: {category: CLINICAL, priority: 50, ttl: 6h}
  - id: early
    version: 1
    trigger: {schedule: {at: "01:30"}}
    action: {task: {template_id: early-check}}
    policy: {category: CLINICAL, priority: 50, ttl: 6h}
)", "dst");
  REQUIRE(rules.ok());
  Patient p;
  p.rules = &*rules;
  p.Fold(Enroll("e1", "diabetes", "America/New_York"), "2026-03-06T12:00:00-05:00");
  auto fired = [&](const std::string& rule) {
    std::vector<std::string> triggers;
    for (const auto& c : p.all_commands) {
      if (c.rule_id() == rule) triggers.push_back(c.trigger());
    }
    return triggers;
  };
  // Mar 8: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens; it fires once, at the jump
  // (absl::FromCivil maps a skipped local time to the transition, a repeated one to its first
  // occurrence), and the next day at 02:30 EDT.
  p.Tick("2026-03-08T01:59:00-05:00");
  CHECK(TimerOf(p, "night") == absl::ToUnixSeconds(At("2026-03-08T03:00:00-04:00")));
  p.Tick("2026-03-08T12:00:00-04:00");
  CHECK(TimerOf(p, "night") == absl::ToUnixSeconds(At("2026-03-09T02:30:00-04:00")));
  CHECK(fired("night") == std::vector<std::string>{"schedule:2026-03-07", "schedule:2026-03-08"});
  // Nov 1: 01:30 happens twice; it fires once (at the first), and next on Nov 2.
  p.Tick("2026-10-31T12:00:00-04:00");
  const size_t before = fired("early").size();
  p.Tick("2026-11-01T01:30:00-04:00");
  p.Tick("2026-11-01T01:30:00-05:00");
  p.Tick("2026-11-01T12:00:00-05:00");
  const auto early = fired("early");
  REQUIRE(early.size() == before + 1);
  CHECK(early.back() == "schedule:2026-11-01");
  CHECK(TimerOf(p, "early") == absl::ToUnixSeconds(At("2026-11-02T01:30:00-05:00")));
}

TEST_CASE("marketing is suppressed without consent or for sensitive patients - care still goes",
          "[decide]") {
  Patient p;
  p.Fold(Consent("c1", v1::ConsentChanged::MARKETING, false), "2026-05-01T09:00:00+08:00");
  p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(DecisionOf(p, "offer")->reason() == v1::Decision::MARKETING_CONSENT);
  CHECK(DecisionOf(p, "welcome")->outcome() == v1::Decision::FIRED);
  Patient q;
  q.Fold(PatientSays("m1", "unsubscribe"), "2026-05-01T09:00:00+08:00");
  q.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(DecisionOf(q, "offer")->reason() == v1::Decision::MARKETING_SENSITIVE);
  CHECK(DecisionOf(q, "welcome")->outcome() == v1::Decision::FIRED);
  // Care-reminder consent withdrawn: care reminders stop, clinical ones still go.
  Patient r;
  r.Fold(Consent("c1", v1::ConsentChanged::CARE_REMINDERS, false), "2026-05-01T09:00:00+08:00");
  r.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(DecisionOf(r, "welcome")->reason() == v1::Decision::CARE_CONSENT);
  CHECK(DecisionOf(r, "offer")->outcome() == v1::Decision::FIRED);
}

TEST_CASE("a holdout withholds automated reminders from its share, decided as for everyone",
          "[decide]") {
  auto with_experiments = RuleSet::Parse(std::string(kRules) + R"(
experiments:
  - id: global-2026
    holdout: 0.3
  - id: diabetes-daily
    holdout: 0.5
    rules: [daily]
    program_id: diabetes
)",
                                         "test-rules");
  INFO(with_experiments.status());
  REQUIRE(with_experiments.ok());
  int held = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string id = absl::StrCat("p-", i);
    Patient treated, control;  // the same patient without and with the experiments
    treated.id = control.id = id;
    control.rules = &*with_experiments;
    for (Patient* p : {&treated, &control}) {
      p->Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
      p->Fold(Glucose("g1", 14), "2026-05-01T10:05:00+08:00");  // a CLINICAL task
    }
    const bool out = AssignmentUnit("global-2026", id) < 0.3;
    held += out;
    INFO(id << (out ? " held out" : " reminded"));
    if (!out) {
      // Decided and sent exactly as without the experiment.
      REQUIRE(control.all_commands.size() == treated.all_commands.size());
      for (size_t k = 0; k < control.all_commands.size(); ++k) {
        CHECK(google::protobuf::util::MessageDifferencer::Equals(control.all_commands[k],
                                                                 treated.all_commands[k]));
      }
      continue;
    }
    // Held out: the CARE and MARKETING reminders are recorded with the command that would have
    // gone; care-c still lost the day's last CARE slot to them (the withheld ones counted, as for
    // everyone); the CLINICAL task goes as usual.
    REQUIRE(control.all_commands.size() == 1);
    CHECK(control.all_commands[0].recipient() == v1::ReminderCommand::STAFF);
    for (const char* rule : {"welcome", "care-b", "offer"}) {
      const v1::Decision* d = nullptr;
      for (const auto& x : control.all_decisions) {
        if (x.rule_id() == rule) d = &x;
      }
      REQUIRE(d != nullptr);
      CHECK(d->outcome() == v1::Decision::SUPPRESSED);
      CHECK(d->reason() == v1::Decision::HOLDOUT);
      CHECK(d->experiment_id() == "global-2026");
      const v1::ReminderCommand* sent = nullptr;
      for (const auto& c : treated.all_commands) {
        if (c.rule_id() == rule) sent = &c;
      }
      REQUIRE(sent != nullptr);
      // The command as sent, but for its explanation: the decision holds that once.
      v1::ReminderCommand as_sent = *sent;
      as_sent.clear_explanation();
      CHECK(google::protobuf::util::MessageDifferencer::Equals(d->withheld(), as_sent));
      CHECK(google::protobuf::util::MessageDifferencer::Equals(d->explanation(),
                                                               sent->explanation()));
      CHECK(d->command_id() == sent->command_id());
    }
    for (const auto& x : control.all_decisions) {
      if (x.rule_id() == "care-c") CHECK(x.reason() == v1::Decision::PRIORITY);
    }
  }
  // A deterministic 30%: the hash spreads 200 patients near it.
  CHECK(held > 40);
  CHECK(held < 80);
  CHECK(AssignmentUnit("global-2026", "p-7") != AssignmentUnit("global-2027", "p-7"));
}

TEST_CASE("an experiment holds nobody back before it starts", "[decide]") {
  auto set = RuleSet::Parse(std::string(kRules) + R"(
experiments:
  - {id: spring, holdout: 0.5, starts_at: "2026-05-01T12:00:00Z"}
)",
                            "test-rules");
  INFO(set.status());
  REQUIRE(set.ok());
  int held_before = 0, held_after = 0, out = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string id = absl::StrCat("p-", i);
    out += AssignmentUnit("spring", id) < 0.5;
    for (const char* at : {"2026-05-01T10:00:00+08:00", "2026-05-02T10:00:00+08:00"}) {
      Patient p;
      p.id = id;
      p.rules = &*set;
      p.Fold(Scan("s1"), at);  // the welcome reminder, before / after 12:00 UTC on May 1
      bool held = false;
      for (const auto& d : p.all_decisions) held |= d.reason() == v1::Decision::HOLDOUT;
      (absl::StrContains(at, "05-01") ? held_before : held_after) += held;
    }
  }
  CHECK(held_before == 0);
  CHECK(held_after == out);
  CHECK(out > 10);
}

TEST_CASE("a programme's holdout holds back only that programme's patients, the first "
          "experiment that holds a patient out named",
          "[decide]") {
  auto set = RuleSet::Parse(std::string(kRules) + R"(
experiments:
  - {id: diabetes-welcome, holdout: 0.5, rules: [welcome], program_id: diabetes}
  - {id: everyone-welcome, holdout: 0.5, rules: [welcome]}
)",
                            "test-rules");
  REQUIRE(set.ok());
  int by_programme = 0, by_everyone = 0;
  for (int i = 0; i < 200; ++i) {
    for (const bool enrolled : {false, true}) {
      Patient p;
      p.rules = &*set;
      p.id = absl::StrCat("p-", i);
      if (enrolled) p.Fold(Enroll("e1", "diabetes", "Asia/Shanghai"), "2026-05-01T09:00:00+08:00");
      p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
      const v1::Decision* d = DecisionOf(p, "welcome");
      REQUIRE(d != nullptr);
      const bool programme = enrolled && AssignmentUnit("diabetes-welcome", p.id) < 0.5;
      const bool everyone = AssignmentUnit("everyone-welcome", p.id) < 0.5;
      INFO(p.id << (enrolled ? " enrolled" : " not enrolled"));
      if (programme || everyone) {
        CHECK(d->reason() == v1::Decision::HOLDOUT);
        CHECK(d->experiment_id() == (programme ? "diabetes-welcome" : "everyone-welcome"));
        CHECK_FALSE(d->withheld().has_explanation());  // the decision holds it
        by_programme += programme;
        by_everyone += !programme;
      } else {
        CHECK(d->outcome() == v1::Decision::FIRED);
      }
    }
  }
  CHECK(by_programme > 60);
  CHECK(by_everyone > 100);
}

TEST_CASE("a rule's variants: each patient gets one by weight, named in command and decision",
          "[decide]") {
  auto set = RuleSet::Parse(R"(
rules:
  - id: welcome
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: welcome, channel: CHAT, parameters: {channel: "{event.scan.channel_id}"}}}
    policy: {category: CARE, priority: 40, ttl: 2h}
    variants:
      - {id: plain, weight: 1}
      - id: later-sms
        weight: 3
        delay: 30m
        action: {reminder: {template_id: welcome-sms, channel: SMS, parameters: {who: "{event.scan.staff_id}"}}}
)",
                            "variants.yaml");
  INFO(set.status());
  REQUIRE(set.ok());
  int later = 0;
  for (int i = 0; i < 400; ++i) {
    Patient p;
    p.rules = &*set;
    p.id = absl::StrCat("p-", i);
    p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
    const CompiledRule::Variant* v = VariantOf(*set->Find("welcome"), p.id);
    REQUIRE(v != nullptr);
    INFO(p.id << " gets " << v->id);
    REQUIRE(p.out.commands.size() == 1);
    const v1::ReminderCommand& cmd = p.out.commands[0];
    const v1::Decision* d = DecisionOf(p, "welcome");
    CHECK(cmd.variant() == v->id);
    CHECK(d->variant() == v->id);
    if (v->id == "later-sms") {
      ++later;
      CHECK(cmd.template_id() == "welcome-sms");
      CHECK(cmd.channel() == v1::SMS);
      CHECK(cmd.parameters().at("who") == "staff-7");
      CHECK(cmd.parameters().count("channel") == 0);
      CHECK(cmd.not_before().seconds() == absl::ToUnixSeconds(At("2026-05-01T10:30:00+08:00")));
      CHECK(cmd.expires_at().seconds() == absl::ToUnixSeconds(At("2026-05-01T12:30:00+08:00")));
      CHECK(d->outcome() == v1::Decision::DEFERRED);
    } else {
      CHECK(cmd.template_id() == "welcome");
      CHECK(cmd.channel() == v1::CHAT);
      CHECK(cmd.parameters().count("channel") == 1);
      CHECK(cmd.not_before().seconds() == absl::ToUnixSeconds(At("2026-05-01T10:00:00+08:00")));
      CHECK(d->outcome() == v1::Decision::FIRED);
    }
  }
  // Three quarters by weight: 300 expected, the hash within a few standard deviations (8.7).
  CHECK(later > 265);
  CHECK(later < 335);
}

TEST_CASE("hard-churned patients get no automated messages, only tasks for a human", "[decide]") {
  Patient p;
  p.Fold(Scan("s1"), "2026-05-01T10:00:00+08:00");
  p.Fold(BloodPressure("b1"), "2026-05-01T10:10:00+08:00");
  p.Fold(Removed("r1"), "2026-05-01T11:00:00+08:00");
  p.Tick("2026-05-04T11:00:00+08:00");  // the blood-pressure absence timer falls due
  CHECK(p.out.commands.empty());
  CHECK(DecisionOf(p, "no-bp-3d")->reason() == v1::Decision::HARD_CHURNED);
  p.Fold(Glucose("g1", 14), "2026-05-04T12:00:00+08:00");
  REQUIRE(p.out.commands.size() == 1);
  CHECK(p.out.commands[0].recipient() == v1::ReminderCommand::STAFF);
  // A scan from before the removal, arriving late, does not lift the pause...
  p.Fold(Scan("s-late"), "2026-05-04T13:00:00+08:00", "2026-05-01T10:30:00+08:00");
  CHECK(DecisionOf(p, "welcome")->reason() == v1::Decision::HARD_CHURNED);
  CHECK(p.out.commands.empty());
  // ...a new scan after it does (the patient added the contact again): messages go again.
  p.Fold(Scan("s-back"), "2026-05-05T10:00:00+08:00");
  CHECK(DecisionOf(p, "welcome")->outcome() == v1::Decision::FIRED);
}

TEST_CASE("became fires on the transition only, and the cooldown holds back a repeat", "[decide]") {
  Patient p;
  auto day = [&](int d) {
    p.Fold(Glucose(absl::StrCat("g", d), 5), absl::StrFormat("2026-05-%02dT09:00:00+08:00", d));
  };
  day(1);
  day(2);
  CHECK(DecisionOf(p, "streak-3") == nullptr);
  day(3);  // streak 3
  CHECK(DecisionOf(p, "streak-3")->outcome() == v1::Decision::FIRED);
  CHECK(DecisionOf(p, "streak-3")->explanation().checks(0).actual() == "3");
  day(4);  // still >= 3: no transition, no decision at all
  CHECK(DecisionOf(p, "streak-3") == nullptr);
  // Broken (no check-in on the 5th and 6th) and rebuilt within 7 days: the cooldown suppresses
  // it; rebuilt again after 7 days, it fires.
  day(7);
  day(8);
  day(9);
  CHECK(DecisionOf(p, "streak-3")->reason() == v1::Decision::COOLDOWN);
  day(12);
  day(13);
  day(14);
  CHECK(DecisionOf(p, "streak-3")->outcome() == v1::Decision::FIRED);
  // Old cap counters are dropped (and the recent ones kept: the loop checks something).
  REQUIRE(p.state.rules().sent_size() > 0);
  for (const auto& c : p.state.rules().sent()) {
    CHECK(c.day() >= absl::CivilDay(2026, 5, 13) - absl::CivilDay(1970, 1, 1));
  }
}

TEST_CASE("a became rule new to a patient's history does not fire for what already held",
          "[decide]") {
  auto without = RuleSet::Parse("rules: []", "empty");
  REQUIRE(without.ok());
  Patient p;
  p.rules = &*without;
  for (int d = 1; d <= 4; ++d) {
    p.Fold(Glucose(absl::StrCat("g", d), 5), absl::StrFormat("2026-05-%02dT09:00:00+08:00", d));
  }
  p.rules = &Rules();  // deployed now: streak is already 4
  p.Fold(Glucose("g5", 5), "2026-05-05T09:00:00+08:00");
  CHECK(DecisionOf(p, "streak-3") == nullptr);
  CHECK(ReadRuleMemory(p.state.rules(), "streak-3").became == v1::RuleMemory::HELD_TRUE);
}

TEST_CASE("an absence timer is moved by each matching event, also one that arrives late, and "
          "never fires twice for one silence",
          "[decide]") {
  Patient p;
  p.Fold(BloodPressure("b1"), "2026-05-01T10:00:00+08:00");
  CHECK(TimerOf(p, "no-bp-3d") ==
        absl::ToUnixSeconds(At("2026-05-04T10:00:00+08:00")));
  // A glucose check-in is not a blood-pressure one: nothing moves.
  p.Fold(Glucose("g1", 5), "2026-05-02T10:00:00+08:00");
  CHECK(TimerOf(p, "no-bp-3d") ==
        absl::ToUnixSeconds(At("2026-05-04T10:00:00+08:00")));
  // A reading taken on the 3rd, uploaded late (recorded just before the timer was due), counts
  // from when it was taken.
  p.Fold(BloodPressure("b2"), "2026-05-04T09:00:00+08:00", "2026-05-03T08:00:00+08:00");
  CHECK(p.out.timer_changes.empty());  // the timer moves lazily: re-armed when it falls due
  p.Tick("2026-05-05T12:00:00+08:00");
  CHECK(p.out.decisions.empty());
  CHECK(TimerOf(p, "no-bp-3d") ==
        absl::ToUnixSeconds(At("2026-05-06T08:00:00+08:00")));
  p.Tick("2026-05-06T08:30:00+08:00");  // due 05-06 08:00
  REQUIRE(p.out.commands.size() == 1);
  const v1::ReminderCommand& nudge = p.out.commands[0];
  CHECK(nudge.rule_id() == "no-bp-3d");
  CHECK(nudge.trigger() ==
        absl::StrCat("absence:", absl::ToUnixSeconds(At("2026-05-03T08:00:00+08:00"))));
  CHECK(nudge.trigger_event_id().empty());
  CHECK(TimerOf(p, "no-bp-3d") == 0);
  p.Tick("2026-05-09T08:30:00+08:00");  // once per silence
  CHECK(p.out.decisions.empty());
  // Late records: one older than the anchor changes nothing; one newer whose window has already
  // passed does not fire a timer in the past (the silence was reported above).
  p.Fold(BloodPressure("b3"), "2026-05-09T09:00:00+08:00", "2026-05-02T08:00:00+08:00");
  CHECK(p.out.timer_changes.empty());
  p.Fold(BloodPressure("b4"), "2026-05-09T10:00:00+08:00", "2026-05-05T08:00:00+08:00");
  CHECK(TimerOf(p, "no-bp-3d") == 0);
  p.Tick("2026-05-12T08:30:00+08:00");
  CHECK(p.out.decisions.empty());
  // A fresh reading arms it again.
  p.Fold(BloodPressure("b5"), "2026-05-12T09:00:00+08:00");
  CHECK(TimerOf(p, "no-bp-3d") ==
        absl::ToUnixSeconds(At("2026-05-15T09:00:00+08:00")));
  // (the three check-in days also made a streak: streak-3 fired once as well)
  CHECK(std::count_if(p.all_commands.begin(), p.all_commands.end(), [](const auto& c) {
          return c.rule_id() == "no-bp-3d";
        }) == 1);
}

TEST_CASE("an absence counts from enrollment until the first matching event", "[decide]") {
  Patient p;
  p.Fold(Enroll("e1", "hypertension", "Asia/Shanghai"), "2026-05-01T10:00:00+08:00");
  CHECK(TimerOf(p, "no-bp-3d") ==
        absl::ToUnixSeconds(At("2026-05-04T10:00:00+08:00")));
  // Quiet hours apply to timers too: due at 22:00, deferred to 08:00.
  Patient q;
  q.Fold(Enroll("e1", "hypertension", "Asia/Shanghai"), "2026-05-01T22:00:00+08:00");
  q.Tick("2026-05-04T22:00:00+08:00");
  REQUIRE(q.out.commands.size() == 1);
  CHECK(DecisionOf(q, "no-bp-3d")->outcome() == v1::Decision::DEFERRED);
  CHECK(q.out.commands[0].not_before().seconds() ==
        absl::ToUnixSeconds(At("2026-05-05T08:00:00+08:00")));
}

TEST_CASE("a schedule fires at the local time every day, across a DST change, while enrolled",
          "[decide]") {
  Patient p;
  // New York, enrolled Friday Mar 6 2026; clocks go forward on Sunday Mar 8.
  p.Fold(Enroll("e1", "diabetes", "America/New_York"), "2026-03-06T12:00:00-05:00");
  CHECK(TimerOf(p, "daily") ==
        absl::ToUnixSeconds(At("2026-03-07T09:00:00-05:00")));
  p.Tick("2026-03-07T09:00:00-05:00");
  REQUIRE(p.out.commands.size() == 1);
  CHECK(p.out.commands[0].trigger() == "schedule:2026-03-07");
  CHECK(p.out.commands[0].parameters().at("streak") == "0");
  // 09:00 on Sunday is 09:00 EDT, an hour earlier in UTC.
  CHECK(TimerOf(p, "daily") ==
        absl::ToUnixSeconds(At("2026-03-08T09:00:00-04:00")));
  p.Tick("2026-03-08T08:59:00-04:00");
  CHECK(p.out.commands.empty());
  p.Tick("2026-03-08T09:00:00-04:00");
  REQUIRE(p.out.commands.size() == 1);
  CHECK(p.out.commands[0].trigger() == "schedule:2026-03-08");
  // Checked in already on Monday: the condition does not hold and nothing is recorded.
  p.Fold(Glucose("g1", 5), "2026-03-09T07:30:00-04:00");
  p.Tick("2026-03-09T09:00:00-04:00");
  CHECK(p.out.commands.empty());
  CHECK(p.out.decisions.empty());
  // A clock that jumps two days fires one reminder (for the earliest due day) and re-arms for
  // the next occurrence after the clock.
  p.Tick("2026-03-12T10:00:00-04:00");
  REQUIRE(DecisionOf(p, "daily") != nullptr);
  CHECK(DecisionOf(p, "daily")->trigger() == "schedule:2026-03-10");
  CHECK(DecisionOf(p, "no-bp-3d") != nullptr);  // counted from enrollment, due 03-09 12:00
  CHECK(TimerOf(p, "daily") ==
        absl::ToUnixSeconds(At("2026-03-13T09:00:00-04:00")));
  // Moving to another programme pauses it at the next due time.
  p.Fold(Enroll("e2", "hypertension", "America/New_York"), "2026-03-12T11:00:00-04:00");
  p.Tick("2026-03-14T10:00:00-04:00");
  CHECK(p.out.commands.empty());
  CHECK(TimerOf(p, "daily") == 0);
  // Patients outside the programme never get it.
  Patient q;
  q.Fold(Scan("s1"), "2026-03-06T12:00:00-05:00");
  CHECK(TimerOf(q, "daily") == 0);
}

TEST_CASE("the default pack: fasting glucose above target 3 days in a row becomes a task",
          "[decide]") {
  auto pack = RuleSet::Load(TEND_SOURCE_DIR "/deploy/rules/default.yaml");
  REQUIRE(pack.ok());
  Patient p;
  p.rules = &*pack;
  p.Fold(Scan("s1"), "2026-05-01T06:00:00+08:00");
  auto fasting = [&](const std::string& id, const std::string& at, double mmol) {
    v1::Event e = Glucose(id, mmol);
    e.mutable_check_in()->mutable_glucose()->set_context(v1::GlucoseReading::FASTING);
    p.Fold(e, at);
  };
  fasting("g1", "2026-05-01T07:00:00+08:00", 8.4);
  fasting("g2", "2026-05-02T07:00:00+08:00", 9.1);
  CHECK(DecisionOf(p, "fasting-glucose-high-3d") == nullptr);
  fasting("g3", "2026-05-03T07:00:00+08:00", 8.8);
  REQUIRE(DecisionOf(p, "fasting-glucose-high-3d") != nullptr);
  CHECK(DecisionOf(p, "fasting-glucose-high-3d")->outcome() == v1::Decision::FIRED);
  const auto task = std::find_if(p.out.commands.begin(), p.out.commands.end(), [](const auto& c) {
    return c.rule_id() == "fasting-glucose-high-3d";
  });
  REQUIRE(task != p.out.commands.end());
  CHECK(task->recipient() == v1::ReminderCommand::STAFF);
  CHECK(task->staff_id() == "staff-7");
  CHECK(task->parameters().at("latest_mmol_per_l") == "8.8");
  // A fourth day above target is no new transition.
  fasting("g4", "2026-05-04T07:00:00+08:00", 8.0);
  CHECK(DecisionOf(p, "fasting-glucose-high-3d") == nullptr);
}

TEST_CASE("with a rule memory index kept beside the patient, deciding decides and remembers what "
          "it does with one built anew for every call",
          "[decide]") {
  auto pack = RuleSet::Load(TEND_SOURCE_DIR "/deploy/rules/default.yaml");
  REQUIRE(pack.ok());
  RuleMemoryIndex index;
  Patient plain, indexed;
  indexed.memories = &index;
  for (Patient* p : {&plain, &indexed}) {
    p->rules = &*pack;
    // A memory of a rule since removed from the set, with a timer: dropped when it falls due.
    RuleMemoryRef(p->state.mutable_rules(),
                  AddRuleMemoryRow(p->state.mutable_rules(), RuleFingerprint("retired-rule")))
        .set_timer_due_s(absl::ToUnixSeconds(At("2026-05-02T12:00:00+08:00")));
    p->Fold(Enroll("e1", "diabetes", "Asia/Shanghai"), "2026-05-01T06:00:00+08:00");
    p->Fold(Scan("s1"), "2026-05-01T06:30:00+08:00");
    for (int day = 1; day <= 9; ++day) {
      const std::string date = absl::StrFormat("2026-05-%02d", day);
      if (day % 4 != 0) {
        v1::Event e = Glucose(absl::StrCat("g", day), 8 + day % 3);
        e.mutable_check_in()->mutable_glucose()->set_context(v1::GlucoseReading::FASTING);
        p->Fold(e, date + "T07:00:00+08:00");
      }
      if (day % 3 == 0) p->Fold(BloodPressure(absl::StrCat("b", day)), date + "T20:00:00+08:00");
      if (day == 5) {
        p->Fold(Consent("c1", v1::ConsentChanged::MARKETING, false), date + "T12:00:00+08:00");
        if (p == &indexed) index = RuleMemoryIndex();  // as for a patient read back: built anew
      }
    }
    p->Tick("2026-06-20T12:00:00+08:00");
  }
  REQUIRE(plain.all_decisions.size() > 10);
  REQUIRE(indexed.all_decisions.size() == plain.all_decisions.size());
  for (size_t i = 0; i < plain.all_decisions.size(); ++i) {
    CHECK(indexed.all_decisions[i].SerializeAsString() ==
          plain.all_decisions[i].SerializeAsString());
  }
  REQUIRE(indexed.all_commands.size() == plain.all_commands.size());
  for (size_t i = 0; i < plain.all_commands.size(); ++i) {
    CHECK(indexed.all_commands[i].SerializeAsString() == plain.all_commands[i].SerializeAsString());
  }
  // The same memories (and caps counted), in the same order: first use.
  CHECK(indexed.state.rules().SerializeAsString() == plain.state.rules().SerializeAsString());
  const v1::RulesState& memories = indexed.state.rules();
  CHECK(memories.memory_rule_size() >= 9);  // the retired rule's and at least 8 of the pack's
  CHECK(memories.memory_rule(0) == RuleFingerprint("retired-rule"));
  CHECK(ReadRuleMemory(memories, "retired-rule").timer_due_s == 0);  // fell due: dropped
  // The index points at the patient's memories of the rules, and at nothing else.
  for (size_t i = 0; i < pack->rules().size(); ++i) {
    CHECK(index.by_rule[i] ==
          FindRuleMemoryRow(memories, RuleFingerprint(pack->rules()[i].rule.id())));
  }
}

TEST_CASE("a patient's alarm fires every timer due that second, in rule-id order, deciding what "
          "a timer per rule decided",
          "[decide]") {
  // The engine keeps one timer key per patient (storage format 12) at its earliest timer. Rules
  // due the same second - the daily 09:00 schedule and a blood-pressure absence counted from a
  // 09:00 reading, a removed rule's timer - must fire in the order one key per rule gave them.
  auto pack = RuleSet::Load(TEND_SOURCE_DIR "/deploy/rules/default.yaml");
  REQUIRE(pack.ok());
  RuleMemoryIndex index;
  Patient per_rule, alarm;
  alarm.alarms = true;
  alarm.memories = &index;
  for (Patient* p : {&per_rule, &alarm}) {
    p->rules = &*pack;
    RuleMemoryRef(p->state.mutable_rules(),
                  AddRuleMemoryRow(p->state.mutable_rules(), RuleFingerprint("retired-rule")))
        .set_timer_due_s(absl::ToUnixSeconds(At("2026-05-04T09:00:00+08:00")));
    p->Fold(Enroll("e1", "diabetes", "Asia/Shanghai"), "2026-05-01T06:00:00+08:00");
    p->Fold(Scan("s1"), "2026-05-01T06:30:00+08:00");
    p->Fold(BloodPressure("b1"), "2026-05-01T09:00:00+08:00");  // no-bp-3d due 05-04 09:00
    for (int day = 2; day <= 12; ++day) {
      const std::string date = absl::StrFormat("2026-05-%02d", day);
      if (day % 5 == 0) p->Fold(Glucose(absl::StrCat("g", day), 7), date + "T10:00:00+08:00");
      if (day == 8) p->Fold(BloodPressure("b8"), date + "T09:00:00+08:00");
    }
    p->Tick("2026-06-30T12:00:00+08:00");
  }
  REQUIRE(per_rule.all_decisions.size() > 10);
  // Rules fell due together: fewer alarms than rule timers.
  CHECK(alarm.timer_calls < per_rule.timer_calls);
  REQUIRE(alarm.all_decisions.size() == per_rule.all_decisions.size());
  for (size_t i = 0; i < per_rule.all_decisions.size(); ++i) {
    CHECK(alarm.all_decisions[i].SerializeAsString() ==
          per_rule.all_decisions[i].SerializeAsString());
  }
  REQUIRE(alarm.all_commands.size() == per_rule.all_commands.size());
  for (size_t i = 0; i < per_rule.all_commands.size(); ++i) {
    CHECK(alarm.all_commands[i].SerializeAsString() ==
          per_rule.all_commands[i].SerializeAsString());
  }
  CHECK(alarm.state.rules().SerializeAsString() == per_rule.state.rules().SerializeAsString());
  CHECK(ReadRuleMemory(alarm.state.rules(), "retired-rule").timer_due_s == 0);
}

v1::Event CouponIssued(const std::string& id, const std::string& coupon,
                       const std::string& expires) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_coupon_issued()->set_coupon_id(coupon);
  e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(absl::ToUnixSeconds(At(expires)));
  return e;
}

v1::Event BirthdayOn(const std::string& id, int month, int day) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_profile_updated()->set_birth_month(month);
  e.mutable_profile_updated()->set_birth_day(day);
  return e;
}

v1::Event CouponRedeemed(const std::string& id, const std::string& coupon) {
  v1::Event e;
  e.set_event_id(id);
  e.mutable_coupon_redeemed()->set_coupon_id(coupon);
  return e;
}

TEST_CASE("date rules: coupon expires tomorrow (cancelled by redemption) and birthday today",
          "[decide]") {
  std::ifstream in(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  const std::string pack((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto set = RuleSet::Parse(pack, "default.yaml");
  INFO(set.status());
  REQUIRE(set.ok());
  auto commands_of = [](const Patient& p, const std::string& rule) {
    std::vector<v1::ReminderCommand> out;
    for (const auto& c : p.all_commands) {
      if (c.rule_id() == rule) out.push_back(c);
    }
    return out;
  };
  Patient p;
  p.rules = &*set;
  v1::Event enroll;
  enroll.set_event_id("e0");
  enroll.mutable_enrollment()->set_program_id("camp");
  enroll.mutable_enrollment()->set_time_zone("Asia/Shanghai");
  p.Fold(enroll, "2026-05-01T09:00:00+08:00");

  SECTION("the soonest coupon is reminded of the day before, a redeemed one never") {
    p.Fold(CouponIssued("e1", "c1", "2026-05-05T23:59:00+08:00"), "2026-05-01T11:00:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") ==
          absl::ToUnixSeconds(At("2026-05-04T10:00:00+08:00")));
    p.Fold(CouponIssued("e2", "c2", "2026-05-08T20:00:00+08:00"), "2026-05-01T12:00:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") ==
          absl::ToUnixSeconds(At("2026-05-04T10:00:00+08:00")));
    p.Tick("2026-05-04T10:30:00+08:00");
    auto sent = commands_of(p, "coupon-expires-tomorrow");
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].parameters().at("coupon_id") == "c1");
    // Another coupon later that day: c1 is still the soonest, and is not reminded of twice.
    p.Fold(CouponIssued("e1b", "c5", "2026-05-20T20:00:00+08:00"), "2026-05-04T12:00:00+08:00");
    CHECK(commands_of(p, "coupon-expires-tomorrow").size() == 1);
    for (const auto& d : p.out.decisions) CHECK(d.rule_id() != "coupon-expires-tomorrow");
    // Once c1 has expired, c2 is next: armed for the day before it.
    p.Tick("2026-05-06T00:30:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") ==
          absl::ToUnixSeconds(At("2026-05-07T10:00:00+08:00")));
    // Redeemed: its timer is gone - moved to c5's day before - and nothing goes for c2.
    p.Fold(CouponRedeemed("e3", "c2"), "2026-05-06T12:00:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") ==
          absl::ToUnixSeconds(At("2026-05-19T10:00:00+08:00")));
    p.Tick("2026-05-09T11:00:00+08:00");
    CHECK(commands_of(p, "coupon-expires-tomorrow").size() == 1);
    // A coupon that appears on its due day after 10:00 is reminded of at once; one whose due
    // day is over never.
    p.Fold(CouponIssued("e4", "c3", "2026-05-11T12:00:00+08:00"), "2026-05-10T15:00:00+08:00");
    sent = commands_of(p, "coupon-expires-tomorrow");
    REQUIRE(sent.size() == 2);
    CHECK(sent[1].parameters().at("coupon_id") == "c3");
    p.Tick("2026-05-12T00:30:00+08:00");
    p.Fold(CouponIssued("e5", "c4", "2026-05-12T20:00:00+08:00"), "2026-05-12T08:00:00+08:00");
    p.Tick("2026-05-13T09:00:00+08:00");
    CHECK(commands_of(p, "coupon-expires-tomorrow").size() == 2);
  }

  SECTION("redeeming the only coupon cancels the timer") {
    p.Fold(CouponIssued("e1", "c1", "2026-05-05T23:59:00+08:00"), "2026-05-01T11:00:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") != 0);
    p.Fold(CouponRedeemed("e2", "c1"), "2026-05-02T11:00:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") == 0);
    p.Tick("2026-05-06T00:00:00+08:00");
    CHECK(commands_of(p, "coupon-expires-tomorrow").empty());
  }

  SECTION("a redemption that arrives before its coupon still cancels it") {
    p.Fold(CouponRedeemed("e1", "c9"), "2026-05-01T10:00:00+08:00");
    p.Fold(CouponIssued("e2", "c9", "2026-05-05T23:59:00+08:00"), "2026-05-01T11:00:00+08:00",
           "2026-05-01T08:00:00+08:00");
    CHECK(TimerOf(p, "coupon-expires-tomorrow") == 0);
    p.Tick("2026-05-06T00:00:00+08:00");
    CHECK(commands_of(p, "coupon-expires-tomorrow").empty());
  }

  SECTION("a coupon that expires first after another was reminded of does not bring it back") {
    p.Fold(CouponIssued("e1", "c1", "2026-05-05T23:59:00+08:00"), "2026-05-01T11:00:00+08:00");
    p.Tick("2026-05-04T10:30:00+08:00");  // c1's reminder
    REQUIRE(commands_of(p, "coupon-expires-tomorrow").size() == 1);
    // c2 expires tonight: its day before is over. Once it has expired, c1 is the soonest again
    // - and was reminded of already.
    p.Fold(CouponIssued("e2", "c2", "2026-05-04T20:00:00+08:00"), "2026-05-04T14:00:00+08:00");
    p.Tick("2026-05-04T21:00:00+08:00");
    // A coupon event that evening finds c1 the soonest again, on its reminder day.
    p.Fold(CouponIssued("e3", "c6", "2026-05-30T20:00:00+08:00"), "2026-05-04T21:30:00+08:00");
    CHECK(commands_of(p, "coupon-expires-tomorrow").size() == 1);
    for (const auto& d : p.all_decisions) {
      if (d.rule_id() == "coupon-expires-tomorrow") CHECK(d.trigger() != "date:0");
    }
    int decided = 0;
    for (const auto& d : p.all_decisions) decided += d.rule_id() == "coupon-expires-tomorrow";
    CHECK(decided == 1);
  }

  SECTION("a date rule new to the rules file arms at the patient's next event") {
    const v1::Event profile = BirthdayOn("e1", 5, 3);
    auto without = RuleSet::Parse(R"(
rules:
  - id: welcome
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: welcome, channel: CHAT}}
    policy: {category: CARE, ttl: 1h}
)",
                                  "old.yaml");
    REQUIRE(without.ok());
    Patient q;  // folded before the rule existed
    q.rules = &*without;
    q.Fold(enroll, "2026-05-01T09:00:00+08:00");
    q.Fold(profile, "2026-05-01T09:30:00+08:00");
    CHECK(TimerOf(q, "birthday-today") == 0);
    q.rules = &*set;
    q.Fold(Scan("e2"), "2026-05-01T10:00:00+08:00");  // no section the date reads
    CHECK(TimerOf(q, "birthday-today") == absl::ToUnixSeconds(At("2026-05-03T09:30:00+08:00")));
  }

  SECTION("a date still in the view after it fired is looked at again once a day, not in a loop") {
    auto eve = RuleSet::Parse(R"(
rules:
  - id: birthday-eve
    version: 1
    trigger: {date: {field: patient.profile.next_birthday, days_before: 1, at: "18:00"}}
    action: {reminder: {template_id: birthday-eve, channel: CHAT}}
    policy: {category: CARE, ttl: 6h}
)",
                               "eve.yaml");
    INFO(eve.status());
    REQUIRE(eve.ok());
    p.rules = &*eve;
    const v1::Event profile = BirthdayOn("e1", 5, 3);
    p.Fold(profile, "2026-05-01T09:30:00+08:00");
    CHECK(TimerOf(p, "birthday-eve") == absl::ToUnixSeconds(At("2026-05-02T18:00:00+08:00")));
    p.Tick("2026-05-02T18:30:00+08:00");
    p.Tick("2026-05-03T12:00:00+08:00");  // through the birthday itself: the harness stops loops
    CHECK(commands_of(p, "birthday-eve").size() == 1);
    CHECK(TimerOf(p, "birthday-eve") > absl::ToUnixSeconds(At("2026-05-03T12:00:00+08:00")));
    p.Tick("2026-05-05T12:00:00+08:00");
    CHECK(TimerOf(p, "birthday-eve") == absl::ToUnixSeconds(At("2027-05-02T18:00:00+08:00")));
    CHECK(commands_of(p, "birthday-eve").size() == 1);
  }

  SECTION("birthday today: once a year, at 09:30 local") {
    const v1::Event profile = BirthdayOn("e1", 5, 3);
    p.Fold(profile, "2026-05-01T09:30:00+08:00");
    CHECK(TimerOf(p, "birthday-today") == absl::ToUnixSeconds(At("2026-05-03T09:30:00+08:00")));
    p.Tick("2026-05-03T12:00:00+08:00");
    CHECK(commands_of(p, "birthday-today").size() == 1);
    p.Tick("2026-05-04T01:00:00+08:00");
    CHECK(TimerOf(p, "birthday-today") == absl::ToUnixSeconds(At("2027-05-03T09:30:00+08:00")));
    CHECK(commands_of(p, "birthday-today").size() == 1);
  }
}

TEST_CASE("a LazyView in a kept scratch reads as a new one, whatever the views before it computed",
          "[decide][view]") {
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  // A patient with every section filled (a fasting reading above target, a coupon, a birthday,
  // a purchase, a withdrawn consent), and one with a scan only.
  Patient rich;
  rich.Fold(Enroll("r1", "diabetes", "Asia/Shanghai"), "2026-03-01T09:00:00+08:00");
  rich.Fold(Scan("r2"), "2026-03-01T09:05:00+08:00");
  for (int day = 2; day <= 4; ++day) {
    v1::Event e = Glucose(absl::StrCat("g", day), 11);
    e.mutable_check_in()->mutable_glucose()->set_context(v1::GlucoseReading::FASTING);
    rich.Fold(e, absl::StrFormat("2026-03-%02dT07:00:00+08:00", day));
  }
  rich.Fold(CouponIssued("c1", "cp-1", "2026-03-20T00:00:00Z"), "2026-03-04T10:00:00+08:00");
  rich.Fold(BirthdayOn("b1", 7, 14), "2026-03-04T10:05:00+08:00");
  rich.Fold(Consent("k1", v1::ConsentChanged::MARKETING, false), "2026-03-04T10:10:00+08:00");
  Patient plain;
  plain.id = "p-2";
  plain.Fold(Scan("p1"), "2026-03-05T09:00:00Z");
  const v1::PatientView whole =
      projections::ComputeView(config, rich.state, At("2026-03-06T12:00:00Z"));
  REQUIRE(whole.glucose().fasting_above_target_days_in_a_row() == 3);  // the sections are filled
  REQUIRE(whole.coupons().outstanding() == 1);
  REQUIRE(whole.profile().birth_month() == 7);
  REQUIRE_FALSE(whole.consent().marketing_consent());
  const absl::Time now = At("2026-03-06T12:00:00Z");
  LazyView::Scratch scratch;
  // (the patient, the parts asked for, one Get after another) in turn, through one scratch
  using projections::kViewAll, projections::kViewChurn, projections::kViewChurnModel;
  struct Turn {
    const Patient* patient;
    std::vector<uint32_t> gets;
  };
  const std::vector<Turn> turns = {
      {&rich, {kViewAll}},
      {&plain, {kViewChurn}},
      {&rich,
       {projections::kViewAdherence | projections::kViewGlucose, kViewChurn, kViewChurnModel}},
      {&plain, {projections::kViewHeader | projections::kViewAcquisition}},
      {&rich, {kViewChurnModel, kViewChurn, projections::kViewCoupons | projections::kViewProfile}},
      {&plain, {kViewAll}},
      {&rich, {projections::kViewConsent}}};
  for (size_t i = 0; i < turns.size(); ++i) {
    const v1::PatientState& state = turns[i].patient->state;
    CAPTURE(i);
    std::string zone;
    const absl::TimeZone tz = projections::PatientTimeZone(config, state, &zone);
    const projections::ActiveDaySummary days =
        projections::SummariseActiveDays(state.engagement().activity_slots(), tz);
    LazyView kept(config, state, now, tz, zone, &days, &scratch);
    LazyView fresh(config, state, now);
    for (uint32_t parts : turns[i].gets) {
      CAPTURE(parts);
      CHECK(google::protobuf::util::MessageDifferencer::Equivalent(kept.Get(parts),
                                                                   fresh.Get(parts)));
    }
  }
}

TEST_CASE(
    "deciding as the engine does (one output cleared, one view kept) decides what new "
    "outputs and views decide",
    "[decide][view]") {
  absl::StatusOr<std::string> text = ReadYamlFile(TEND_SOURCE_DIR "/deploy/rules/default.yaml");
  REQUIRE(text.ok());
  // With holdouts: a withheld command leaves the output it was built in.
  auto pack = RuleSet::Parse(*text + R"(
experiments:
  - {id: everyone, holdout: 0.4}
)",
                             "default-with-holdout");
  INFO(pack.status());
  REQUIRE(pack.ok());
  int holdouts = 0, commands = 0;
  for (int n = 0; n < 12; ++n) {
    Patient engine_like, anew;
    anew.as_engine = false;
    for (Patient* p : {&engine_like, &anew}) {
      p->rules = &*pack;
      p->id = absl::StrCat("p-", n);
      p->alarms = true;
      p->Fold(Enroll("e1", "diabetes", n % 2 == 0 ? "Asia/Shanghai" : "America/New_York"),
              "2026-05-01T06:00:00+08:00");
      p->Fold(Scan("s1"), "2026-05-01T06:30:00+08:00");
      p->Fold(CouponIssued("c1", "cp-1", "2026-05-06T00:00:00Z"), "2026-05-01T07:00:00+08:00");
      p->Fold(BirthdayOn("b1", 5, 4 + n % 3), "2026-05-01T07:05:00+08:00");
      for (int day = 1; day <= 9; ++day) {
        const std::string date = absl::StrFormat("2026-05-%02d", day);
        if ((day + n) % 4 != 0) {
          v1::Event e = Glucose(absl::StrCat("g", day), 8 + (day + n) % 4);
          e.mutable_check_in()->mutable_glucose()->set_context(v1::GlucoseReading::FASTING);
          p->Fold(e, date + "T07:00:00+08:00");
        }
        if (day % 3 == 0) p->Fold(BloodPressure(absl::StrCat("b", day)), date + "T20:00:00+08:00");
        if (day == 5 + n % 3) p->Fold(Removed(absl::StrCat("r", day)), date + "T21:00:00+08:00");
        if (day == 6 + n % 3) p->Fold(Scan(absl::StrCat("s", day)), date + "T09:00:00+08:00");
      }
      p->Tick("2026-06-20T12:00:00+08:00");
    }
    REQUIRE(engine_like.all_decisions.size() == anew.all_decisions.size());
    for (size_t i = 0; i < anew.all_decisions.size(); ++i) {
      CHECK(engine_like.all_decisions[i].SerializeAsString() ==
            anew.all_decisions[i].SerializeAsString());
      holdouts += anew.all_decisions[i].reason() == v1::Decision::HOLDOUT;
    }
    REQUIRE(engine_like.all_commands.size() == anew.all_commands.size());
    for (size_t i = 0; i < anew.all_commands.size(); ++i) {
      CHECK(engine_like.all_commands[i].SerializeAsString() ==
            anew.all_commands[i].SerializeAsString());
    }
    commands += static_cast<int>(anew.all_commands.size());
    CHECK(engine_like.state.SerializeAsString() == anew.state.SerializeAsString());
  }
  CHECK(holdouts > 5);  // both paths met: withheld commands, and commands in the slots after
  CHECK(commands > 20);
}

}  // namespace
}  // namespace tend
