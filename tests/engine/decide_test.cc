// Specs of engine/decide.h: which rules fire on an event and what each global policy makes of
// them — each policy in isolation, quiet hours across DST changes, arbitration under a cap.
#include "engine/decide.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"

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
)";

const RuleSet& Rules() {
  static const RuleSet* rules = [] {
    auto r = RuleSet::Parse(kRules, "test-rules");
    if (!r.ok()) std::abort();
    return new RuleSet(*std::move(r));
  }();
  return *rules;
}

absl::Time At(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) std::abort();
  return t;
}

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(name, &tz)) std::abort();
  return tz;
}

v1::Event Scan(const std::string& id) {
  v1::Event e;
  e.set_event_id(id);
  e.set_patient_id("p-1");
  e.mutable_scan()->set_channel_id("pharmacy");
  return e;
}

v1::Event Glucose(const std::string& id, double mmol) {
  v1::Event e;
  e.set_event_id(id);
  e.set_patient_id("p-1");
  e.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
  e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(mmol);
  return e;
}

v1::PatientView View() {
  v1::PatientView v;
  v.set_patient_id("p-1");
  v.mutable_churn()->set_stage(v1::ChurnView::ACTIVE);
  v.mutable_consent()->set_marketing_consent(true);
  v.mutable_consent()->set_care_reminders_consent(true);
  return v;
}

struct Run {
  DecideOutput out;
  v1::RulesState state;
};

void Decide(Run* run, const v1::Event& event, const std::string& now,
            const v1::PatientView& after = View(), const v1::PatientView* before = nullptr,
            const PolicyOptions& policy = PolicyOptions(), const std::string& zone = "Asia/Shanghai") {
  run->out = DecideOutput();
  DecideInput in;
  in.before = before;
  in.after = &after;
  in.event = &event;
  in.now = At(now);
  in.tz = Zone(zone);
  in.staff_id = "staff-7";
  DecideOnEvent(Rules(), policy, in, &run->state, &run->out);
}

const v1::Decision* DecisionOf(const Run& run, const std::string& rule) {
  for (const auto& d : run.out.decisions) {
    if (d.rule_id() == rule) return &d;
  }
  return nullptr;
}

TEST_CASE("an event fires its rules: automated reminders with deterministic ids and the values "
          "behind them",
          "[decide]") {
  Run run;
  Decide(&run, Scan("s1"), "2026-05-01T10:00:00+08:00");
  REQUIRE(run.out.commands.size() == 3);  // welcome, care-b + offer; care-c loses the CARE cap
  const v1::ReminderCommand& c = run.out.commands[0];
  CHECK(c.rule_id() == "welcome");
  CHECK(c.rule_version() == 2);
  CHECK(c.recipient() == v1::ReminderCommand::PATIENT);
  CHECK(c.automated());
  CHECK(c.channel() == v1::CHAT);
  CHECK(c.parameters().at("channel") == "pharmacy");
  CHECK(c.parameters().at("fixed") == "hello");
  CHECK(c.not_before().seconds() == absl::ToUnixSeconds(At("2026-05-01T10:00:00+08:00")));
  CHECK(c.expires_at().seconds() == absl::ToUnixSeconds(At("2026-05-01T12:00:00+08:00")));
  CHECK(c.trigger_event_id() == "s1");
  CHECK(c.command_id() == CommandId("welcome", 2, "p-1", "event:s1"));
  CHECK(c.command_id().size() == 32);
  CHECK(CommandId("welcome", 2, "p-1", "event:s2") != c.command_id());
  CHECK(CommandId("welcome", 3, "p-1", "event:s1") != c.command_id());
  CHECK(DecisionOf(run, "welcome")->outcome() == v1::Decision::FIRED);
  CHECK(DecisionOf(run, "welcome")->command_id() == c.command_id());

  // A task for the assigned health manager, with the conditions and their actual values.
  Decide(&run, Glucose("g1", 12.5), "2026-05-01T11:00:00+08:00");
  REQUIRE(run.out.commands.size() == 1);
  const v1::ReminderCommand& task = run.out.commands[0];
  CHECK(task.recipient() == v1::ReminderCommand::STAFF);
  CHECK(task.staff_id() == "staff-7");
  CHECK_FALSE(task.automated());
  CHECK(task.parameters().at("value") == "12.5");
  REQUIRE(task.explanation().checks_size() == 2);
  CHECK(task.explanation().checks(1).field() == "event.check_in.glucose.mmol_per_l");
  CHECK(task.explanation().checks(1).actual() == "12.5");
  CHECK(task.explanation().checks(1).held());

  // The trigger fired but the condition did not hold: recorded, no command.
  Decide(&run, Glucose("g2", 6.0), "2026-05-01T12:00:00+08:00");
  CHECK(run.out.commands.empty());
  CHECK(DecisionOf(run, "high-glucose")->reason() == v1::Decision::CONDITIONS);
  CHECK(DecisionOf(run, "high-glucose")->explanation().checks(1).actual() == "6");
}

TEST_CASE("priority arbitration under the daily cap, deterministic, losers recorded", "[decide]") {
  Run run;
  Decide(&run, Scan("s1"), "2026-05-01T10:00:00+08:00");
  CHECK(DecisionOf(run, "welcome")->outcome() == v1::Decision::FIRED);  // priority 40
  CHECK(DecisionOf(run, "care-b")->outcome() == v1::Decision::FIRED);   // 35
  CHECK(DecisionOf(run, "care-c")->outcome() == v1::Decision::SUPPRESSED);
  CHECK(DecisionOf(run, "care-c")->reason() == v1::Decision::PRIORITY);
  CHECK(run.state.sent_per_day().at("2026-05-01/CARE") == 2);
  // Later the same local day the cap is simply full; the next day it is not.
  Decide(&run, Scan("s2"), "2026-05-01T20:00:00+08:00");
  CHECK(DecisionOf(run, "welcome")->reason() == v1::Decision::CAP);
  Decide(&run, Scan("s3"), "2026-05-02T09:00:00+08:00");
  CHECK(DecisionOf(run, "welcome")->outcome() == v1::Decision::FIRED);
  // A cap of 1 gives the slot to the highest priority, whatever the rule order in the file.
  PolicyOptions one;
  one.daily_cap[v1::CARE] = 1;
  Run other;
  Decide(&other, Scan("s1"), "2026-05-01T10:00:00+08:00", View(), nullptr, one);
  CHECK(DecisionOf(other, "welcome")->outcome() == v1::Decision::FIRED);
  CHECK(DecisionOf(other, "care-b")->reason() == v1::Decision::PRIORITY);
}

TEST_CASE("quiet hours defer a reminder to their end, or drop it when its time to live ends first",
          "[decide]") {
  Run run;
  Decide(&run, Scan("s1"), "2026-05-01T22:30:00+08:00");
  CHECK(DecisionOf(run, "welcome")->reason() == v1::Decision::QUIET_HOURS_EXPIRED);  // ttl 2h
  const v1::Decision* b = DecisionOf(run, "care-b");
  CHECK(b->outcome() == v1::Decision::DEFERRED);
  const v1::ReminderCommand& cmd = run.out.commands[0];
  CHECK(cmd.rule_id() == "care-b");
  CHECK(cmd.not_before().seconds() == absl::ToUnixSeconds(At("2026-05-02T08:00:00+08:00")));
  // Counted on the day it goes out.
  CHECK(run.state.sent_per_day().count("2026-05-02/CARE") == 1);
  // Just after midnight, too; tasks for staff are not held back.
  Decide(&run, Glucose("g1", 15), "2026-05-03T00:30:00+08:00");
  CHECK(run.out.commands[0].not_before().seconds() ==
        absl::ToUnixSeconds(At("2026-05-03T00:30:00+08:00")));
}

TEST_CASE("quiet hours follow the patient's clock across DST changes", "[decide]") {
  const PolicyOptions p;
  const absl::TimeZone ny = Zone("America/New_York");
  // Sat Mar 7 2026 23:00 EST: the window ends Sun Mar 8 08:00, which is EDT (-04:00) by then.
  CHECK(QuietHoursEnd(p, At("2026-03-07T23:00:00-05:00"), ny) == At("2026-03-08T08:00:00-04:00"));
  // Sat Oct 31 23:00 EDT: ends Sun Nov 1 08:00 EST (-05:00).
  CHECK(QuietHoursEnd(p, At("2026-10-31T23:00:00-04:00"), ny) == At("2026-11-01T08:00:00-05:00"));
  // 01:30 on the night clocks go back is inside the window either time it happens.
  CHECK(QuietHoursEnd(p, At("2026-11-01T01:30:00-05:00"), ny) == At("2026-11-01T08:00:00-05:00"));
  // Outside the window nothing moves.
  CHECK(QuietHoursEnd(p, At("2026-03-09T12:00:00-04:00"), ny) == At("2026-03-09T12:00:00-04:00"));
  Run run;
  Decide(&run, Scan("s1"), "2026-03-07T23:00:00-05:00", View(), nullptr, p, "America/New_York");
  CHECK(run.out.commands[0].not_before().seconds() ==
        absl::ToUnixSeconds(At("2026-03-08T08:00:00-04:00")));
}

TEST_CASE("marketing is suppressed without consent or for sensitive patients; care still goes",
          "[decide]") {
  v1::PatientView v = View();
  v.mutable_consent()->set_marketing_consent(false);
  Run run;
  Decide(&run, Scan("s1"), "2026-05-01T10:00:00+08:00", v);
  CHECK(DecisionOf(run, "offer")->reason() == v1::Decision::MARKETING_CONSENT);
  CHECK(DecisionOf(run, "welcome")->outcome() == v1::Decision::FIRED);
  v = View();
  v.mutable_consent()->set_marketing_sensitive(true);
  Run run2;
  Decide(&run2, Scan("s1"), "2026-05-01T10:00:00+08:00", v);
  CHECK(DecisionOf(run2, "offer")->reason() == v1::Decision::MARKETING_SENSITIVE);
}

TEST_CASE("hard-churned patients get no automated messages, only tasks for a human", "[decide]") {
  v1::PatientView v = View();
  v.mutable_churn()->set_stage(v1::ChurnView::HARD_CHURNED);
  Run run;
  Decide(&run, Scan("s1"), "2026-05-01T10:00:00+08:00", v);
  CHECK(run.out.commands.empty());
  CHECK(DecisionOf(run, "welcome")->reason() == v1::Decision::HARD_CHURNED);
  Decide(&run, Glucose("g1", 14), "2026-05-01T10:00:00+08:00", v);
  REQUIRE(run.out.commands.size() == 1);
  CHECK(run.out.commands[0].recipient() == v1::ReminderCommand::STAFF);
}

TEST_CASE("became fires on the transition only, and the cooldown holds back a repeat", "[decide]") {
  v1::PatientView before = View(), after = View();
  before.mutable_adherence()->set_current_streak(2);
  after.mutable_adherence()->set_current_streak(3);
  Run run;
  Decide(&run, Glucose("g1", 5), "2026-05-03T09:00:00+08:00", after, &before);
  CHECK(DecisionOf(run, "streak-3")->outcome() == v1::Decision::FIRED);
  // Still >= 3: no transition, no decision at all.
  Decide(&run, Glucose("g2", 5), "2026-05-04T09:00:00+08:00", after, &after);
  CHECK(DecisionOf(run, "streak-3") == nullptr);
  // Broken and rebuilt within 7 days: the cooldown suppresses it; after 7 days it fires again.
  Decide(&run, Glucose("g3", 5), "2026-05-08T09:00:00+08:00", after, &before);
  CHECK(DecisionOf(run, "streak-3")->reason() == v1::Decision::COOLDOWN);
  Decide(&run, Glucose("g4", 5), "2026-05-10T09:00:00+08:00", after, &before);
  CHECK(DecisionOf(run, "streak-3")->outcome() == v1::Decision::FIRED);
  // Old cap counters are dropped.
  for (const auto& [day, n] : run.state.sent_per_day()) CHECK(day >= "2026-05-09");
}

}  // namespace
}  // namespace tend
