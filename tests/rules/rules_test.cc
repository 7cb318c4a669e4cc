// Specs of rules/rules.h: rule files are checked against the schemas of the view and the event
// at load time, and conditions evaluate with an explanation of the values behind them.
#include "rules/rules.h"

#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "events/codec.h"

namespace tend {
namespace {

std::string ErrorOf(const std::string& yaml) {
  auto r = RuleSet::Parse(yaml, "rules.yaml");
  return r.ok() ? "(accepted)" : std::string(r.status().message());
}

// A valid rule with `trigger` and `when` substituted.
std::string Rule(const std::string& trigger, const std::string& when = "{}",
                 const std::string& policy = "{category: CARE, ttl: 1h}") {
  return absl::StrCat("rules:\n  - id: r1\n    version: 1\n    trigger: ", trigger,
                      "\n    when: ", when,
                      "\n    action: {reminder: {template_id: t, channel: CHAT}}\n    policy: ",
                      policy, "\n");
}

TEST_CASE("a rule file's text that is not UTF-8 is refused, naming the field and the byte",
          "[rules]") {
  // Latin-1 "é" (0xE9) where UTF-8 was meant: proto3 would refuse to read back the decisions and
  // commands such a rule wrote, so the file is refused when it is loaded.
  const std::string latin1 = "caf\xe9";
  auto with = [](const std::string& action) {
    return absl::StrCat("rules:\n  - id: r1\n    version: 1\n    trigger: {event: {kind: scan}}\n",
                        "    action: ", action, "\n    policy: {category: CARE, ttl: 1h}\n");
  };
  const std::string in_template =
      ErrorOf(with("{reminder: {template_id: " + latin1 + ", channel: CHAT}}"));
  CHECK_THAT(in_template, Catch::Contains("rules.yaml:5"));
  CHECK_THAT(in_template, Catch::Contains("rules[0].action.reminder.template_id"));
  CHECK_THAT(in_template, Catch::Contains("not UTF-8 (byte 4 of the value, \\xe9)"));
  CHECK_THAT(in_template, Catch::Contains("save the file as UTF-8"));
  // A map's key and value, a condition's value.
  CHECK_THAT(
      ErrorOf(with("{reminder: {template_id: t, channel: CHAT, parameters: {" + latin1 + ": x}}}")),
      Catch::Contains("not UTF-8"));
  CHECK_THAT(
      ErrorOf(with("{reminder: {template_id: t, channel: CHAT, parameters: {x: " + latin1 + "}}}")),
      Catch::Contains("not UTF-8"));
  CHECK_THAT(ErrorOf(Rule("{event: {kind: scan, filter: {compare: {field: event.scan.channel_id, "
                          "op: EQ, value: " +
                          latin1 + "}}}}")),
             Catch::Contains("not UTF-8"));
  // The same text in UTF-8 loads.
  CHECK(ErrorOf(with("{reminder: {template_id: \"caf\xc3\xa9\", channel: CHAT}}")) == "(accepted)");
}

TEST_CASE("the default rule pack loads", "[rules]") {
  auto rules = RuleSet::Load(TEND_SOURCE_DIR "/deploy/rules/default.yaml");
  REQUIRE(rules.ok());
  REQUIRE(rules->rules().size() == 13);
  CHECK(rules->rules()[0].rule.id() == "daily-checkin");
  CHECK(rules->rules()[0].schedule_minute_of_day == 9 * 60);
  const std::string described = DescribeRules(*rules);
  CHECK(described.find("no-bp-3d v1: no check_in for 3d -> reminder bp-nudge via CHAT [CLINICAL, "
                       "priority 50, cooldown 3d, ttl 1d]") != std::string::npos);
  CHECK(described.find("streak-7 v1: became patient.adherence.current_streak >= 7 -> reminder") !=
        std::string::npos);
  CHECK(described.find("fasting-glucose-high-3d v1: became "
                       "patient.glucose.fasting_above_target_days_in_a_row >= 3 -> task "
                       "glucose-review") != std::string::npos);
  CHECK(described.find("coupon-expires-tomorrow v1: 10:00 local, 1 day(s) before "
                       "patient.coupons.next_expiry -> reminder coupon-expiring via CHAT") !=
        std::string::npos);
  CHECK(described.find("13 rules OK") != std::string::npos);
}

TEST_CASE("a rule's trigger is compiled to its kind and the event body it names", "[rules]") {
  using Trigger = CompiledRule::Trigger;
  auto compiled = [](const std::string& trigger) {
    auto set = RuleSet::Parse(Rule(trigger), "t");
    REQUIRE(set.ok());
    return set->rules().front();
  };
  // Every kind a rule may name is the body EventTypeName names so.
  for (const char* kind :
       {"scan", "message", "check_in", "purchase", "enrollment", "contact_removed",
        "consent_changed", "coupon_issued", "coupon_redeemed", "profile_updated"}) {
    INFO(kind);
    for (const std::string& trigger : {absl::StrCat("{event: {kind: ", kind, "}}"),
                                       absl::StrCat("{absence: {kind: ", kind, ", after: 1d}}")}) {
      const CompiledRule r = compiled(trigger);
      CHECK(r.trigger == (trigger[1] == 'e' ? Trigger::kEvent : Trigger::kAbsence));
      REQUIRE(r.trigger_body != v1::Event::BODY_NOT_SET);
      v1::Event event;
      const auto* field = v1::Event::descriptor()->FindFieldByNumber(r.trigger_body);
      REQUIRE(field != nullptr);
      event.GetReflection()->MutableMessage(&event, field);
      CHECK(event.body_case() == r.trigger_body);
      CHECK(EventTypeName(event) == kind);
    }
  }
  CHECK(compiled("{absence: {kind: activity, after: 1d}}").trigger_body == v1::Event::BODY_NOT_SET);
  CHECK(
      compiled("{became: {compare: {field: patient.churn.stage, op: EQ, value: LOST}}}").trigger ==
      Trigger::kBecame);
  CHECK(compiled(R"({schedule: {at: "09:00"}})").trigger == Trigger::kSchedule);
  CHECK(compiled(R"({date: {field: patient.profile.next_birthday, at: "09:00"}})").trigger ==
        Trigger::kDate);
}

TEST_CASE("an enum's value reads as its number and prints as its name, an unnamed number as empty",
          "[rules]") {
  v1::PatientView view;
  view.mutable_churn()->set_stage(v1::ChurnView::HARD_CHURNED);
  auto path = ResolveFieldPath("patient.churn.stage");
  REQUIRE(path.ok());
  FieldValue v = ReadField(*path, view, nullptr);
  CHECK(v.kind == FieldValue::Kind::kEnum);
  CHECK(v.enum_number == v1::ChurnView::HARD_CHURNED);
  CHECK(v.ToString() == "HARD_CHURNED");
  // A number this build has no name for (a newer writer's value): compared by number, printed
  // as nothing.
  view.mutable_churn()->set_stage(static_cast<v1::ChurnView::Stage>(77));
  v = ReadField(*path, view, nullptr);
  CHECK(v.enum_number == 77);
  CHECK(v.ToString().empty());
  // An event's enum, read by reflection.
  v1::Event event;
  event.mutable_check_in()->set_kind(v1::CheckIn::BLOOD_PRESSURE);
  auto kind = ResolveFieldPath("event.check_in.kind");
  REQUIRE(kind.ok());
  CHECK(ReadField(*kind, view, &event).ToString() == "BLOOD_PRESSURE");
  CHECK(ReadField(*kind, view, nullptr).ToString() == "KIND_UNSPECIFIED");  // no event
}

TEST_CASE("a number in a reminder's parameters or a decision's values is printed whole when whole",
          "[rules]") {
  auto text = [](double number) {
    FieldValue v;
    v.number = number;
    return v.ToString();
  };
  CHECK(text(1234567) == "1234567");                    // an amount in fen ("%g": 1.23457e+06)
  CHECK(text(1796520000) == "1796520000");              // seconds since 1970
  CHECK(text(1'000'000'000'000'000) == "1000000000000000");  // the largest amount
  CHECK(text(-1) == "-1");
  CHECK(text(0) == "0");
  CHECK(text(-0.0) == "-0");  // as "%.0f" printed it
  CHECK(text(9007199254740991.0) == "9007199254740991");   // 2^53 - 1
  CHECK(text(-9007199254740991.0) == "-9007199254740991");
  CHECK(text(9007199254740992.0) == "9.0072e+15");         // 2^53: "%g"
  CHECK(text(12.5) == "12.5");
  CHECK(text(2.0 / 3.0) == "0.666667");
  CHECK(text(1e300) == "1e+300");  // past 2^53 a double is not a whole number to print
}

TEST_CASE("a bad rule is refused with the rule id, the key and the problem", "[rules]") {
  CHECK(ErrorOf(Rule("{event: {kind: check_in}}")) == "(accepted)");
  CHECK(ErrorOf(Rule("{event: {kind: checkin}}")) ==
        "rules.yaml: rule r1: trigger.event.kind: \"checkin\" is not one of scan, message, "
        "check_in, purchase, enrollment, contact_removed, consent_changed, coupon_issued, "
        "coupon_redeemed, profile_updated");
  CHECK(ErrorOf(Rule("{event: {kind: scan}, schedule: {at: \"09:00\"}}")) ==
        "rules.yaml: rule r1: trigger: give exactly one of event, absence, became, schedule, date");
  CHECK(ErrorOf(Rule("{date: {field: patient.coupons.outstanding, at: \"10:00\"}}")) ==
        "rules.yaml: rule r1: trigger.date.field: \"patient.coupons.outstanding\" is not one of "
        "the dates a rule can wait for: patient.coupons.next_expiry, "
        "patient.profile.next_birthday");
  CHECK(ErrorOf(Rule("{date: {field: patient.acquisition.first_seen_at, at: \"10:00\"}}")).find(
            "is not one of the dates a rule can wait for") != std::string::npos);
  CHECK(ErrorOf(Rule("{date: {field: patient.coupons.next_expiry, days_before: 400, at: "
                     "\"10:00\"}}")) ==
        "rules.yaml: rule r1: trigger.date.days_before: must be 0-366");
  CHECK(ErrorOf(Rule("{date: {field: patient.profile.next_birthday, at: \"25:00\"}}")) ==
        "rules.yaml: rule r1: trigger.date.at: \"25:00\" is not a local time HH:MM");
  CHECK(ErrorOf(Rule("{date: {field: patient.profile.next_birthday, at: \"09:30\"}}")) ==
        "(accepted)");
  CHECK(ErrorOf(Rule("{schedule: {at: \"9am\"}}")) ==
        "rules.yaml: rule r1: trigger.schedule.at: \"9am\" is not a local time HH:MM");
  CHECK(ErrorOf(Rule("{absence: {kind: check_in}}")) ==
        "rules.yaml: rule r1: trigger.absence.after: is required and must be > 0 (e.g. 3d)");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}",
                     "{compare: {field: patient.adherence.current_streek, op: GE, value: \"7\"}}"))
            .rfind("rules.yaml: rule r1: when.compare.field: \"patient.adherence.current_streek\": "
                   "patient.adherence has no field \"current_streek\" (it has: check_in_days,",
                   0) == 0);
  CHECK(ErrorOf(Rule("{event: {kind: scan}}",
                     "{compare: {field: patient.churn.stage, op: EQ, value: SLEEPING}}")) ==
        "rules.yaml: rule r1: when.compare.value: \"SLEEPING\" is not one of STAGE_UNSPECIFIED, NEW, "
        "ACTIVE, SILENT, LOST, HARD_CHURNED");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}",
                     "{compare: {field: patient.churn.stage, op: GT, value: NEW}}")) ==
        "rules.yaml: rule r1: when.compare.op: GT needs a number; patient.churn.stage is not (use "
        "EQ or NE)");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}",
                     "{compare: {field: patient.churn.p_alive, op: LT, value: low}}")) ==
        "rules.yaml: rule r1: when.compare.value: \"low\" is not a number");
  CHECK(ErrorOf(Rule("{schedule: {at: \"09:00\"}}",
                     "{compare: {field: event.check_in.kind, op: EQ, value: GLUCOSE}}")) ==
        "rules.yaml: rule r1: when.compare.field: \"event.check_in.kind\": there is no event "
        "here (only patient.* fields)");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}", "{compare: {field: patient.churn, op: EQ, value: x}}"))
            .find("churn is a ChurnView; name one of its fields") != std::string::npos);
  CHECK(ErrorOf(Rule("{event: {kind: scan}}",
                     "{all: [{compare: {field: patient.churn.x, op: GT, value: \"1\"}}], "
                     "not: {compare: {field: patient.churn.x, op: GT, value: \"1\"}}}")) ==
        "rules.yaml: rule r1: when: give exactly one of compare, all, any, not");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}", "{}", "{ttl: 1h}")) ==
        "rules.yaml: rule r1: policy.category: is required (CLINICAL, CARE, MARKETING)");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}", "{}", "{category: CARE}")) ==
        "rules.yaml: rule r1: policy.ttl: is required and must be > 0 (e.g. 12h)");
  // A duration nanoseconds cannot hold is refused, not cut to 292 years.
  CHECK(ErrorOf(
            Rule("{event: {kind: scan}}", "{}", "{category: CARE, ttl: 1h, cooldown: 200000d}")) ==
        "rules.yaml:7: rules[0].policy.cooldown: \"200000d\" is longer than 292 years (allowed: a "
        "duration such as 90s, 15m, 36h or 3d)");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}", "{}",
                     "{category: CARE, ttl: 1h, cooldown: 100000d}")) == "(accepted)");
  CHECK(ErrorOf(Rule("{event: {kind: scan}}") + Rule("{event: {kind: scan}}").substr(7)) ==
        "rules.yaml: rule r1: id: used by an earlier rule");
  CHECK(ErrorOf("rules:\n  - id: r1\n    verison: 1\n") ==
        "rules.yaml:3: rules[0].verison: unknown key (allowed: id, version, description, trigger, "
        "when, action, policy, variants)");
}

v1::PatientView View() {
  v1::PatientView v;
  v.mutable_churn()->set_stage(v1::ChurnView::SILENT);
  v.mutable_churn()->set_p_alive(0.42);
  v.mutable_adherence()->set_current_streak(7);
  (*v.mutable_adherence()->mutable_check_in_days_by_kind())["GLUCOSE"] = 12;
  return v;
}

CompiledCondition Compile(const std::string& yaml_condition) {
  auto rules = RuleSet::Parse(Rule("{event: {kind: check_in}}", yaml_condition), "t");
  REQUIRE(rules.ok());
  return rules->rules()[0].when;
}

TEST_CASE("experiments are checked: ids, shares, the rules they name", "[rules]") {
  const std::string rule = R"(
rules:
  - id: hello
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: hello, channel: CHAT}}
    policy: {category: CARE, ttl: 1h}
  - id: alert
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: alert, channel: CHAT}}
    policy: {category: CLINICAL, ttl: 1h}
experiments:
)";
  auto error = [&](const std::string& experiments) {
    auto set = RuleSet::Parse(rule + experiments, "x.yaml");
    return set.ok() ? std::string("ok") : std::string(set.status().message());
  };
  CHECK(error("  - {id: a, holdout: 0.1}") == "ok");
  CHECK(error("  - {id: a, holdout: 0}") ==
        "x.yaml: experiment a: holdout: the share held out must be in (0, 0.5] (0.01-0.15 is usual)");
  CHECK(error("  - {id: a, holdout: 0.6}").find("holdout:") != std::string::npos);
  CHECK(error("  - {id: a, holdout: .nan}").find("holdout:") != std::string::npos);
  CHECK(error("  - {id: 'a b', holdout: 0.1}") ==
        "x.yaml: experiment a b: id: 1-64 characters of [A-Za-z0-9._-] are required");
  CHECK(error("  - {id: a, holdout: 0.1}\n  - {id: a, holdout: 0.2}") ==
        "x.yaml: experiment a: id: used by an earlier experiment");
  CHECK(error("  - {id: a, holdout: 0.1, rules: [nope]}") ==
        "x.yaml: experiment a: rules: no rule \"nope\" in this file");
  CHECK(error("  - {id: a, holdout: 0.1, exempt_rules: [nope]}").find("exempt_rules:") !=
        std::string::npos);
  CHECK(error("  - {id: a, holdout: 0.1, program_id: " + std::string(257, 'p') + "}") ==
        "x.yaml: experiment a: program_id: must be at most 256 bytes, as an enrollment's "
        "program_id");
  // A programme is an enrollment's free text: "Diabetes Programme 2" is one.
  CHECK(error("  - {id: a, holdout: 0.1, program_id: 'Diabetes Programme 2'}") == "ok");
  // Naming a rule it could never hold back is a mistake, said at load.
  CHECK(error("  - {id: a, holdout: 0.1, rules: [alert]}") ==
        "x.yaml: experiment a: rules: \"alert\" is CLINICAL, never held back unless "
        "hold_clinical is true");
  CHECK(error("  - {id: a, holdout: 0.1, rules: [alert], hold_clinical: true}") == "ok");
  // Who is covered: CLINICAL only when said in as many words; exemptions by rule and category.
  auto covered = [&](const std::string& experiments, const std::string& id) {
    auto set = RuleSet::Parse(rule + experiments, "x.yaml");
    REQUIRE(set.ok());
    return !set->Find(id)->holdouts.empty();
  };
  CHECK(covered("  - {id: a, holdout: 0.1}", "hello"));
  CHECK_FALSE(covered("  - {id: a, holdout: 0.1}", "alert"));
  CHECK(covered("  - {id: a, holdout: 0.1, hold_clinical: true}", "alert"));
  CHECK_FALSE(covered("  - {id: a, holdout: 0.1, exempt_rules: [hello]}", "hello"));
  CHECK_FALSE(covered("  - {id: a, holdout: 0.1, exempt_categories: [CARE]}", "hello"));
  CHECK_FALSE(covered("  - {id: a, holdout: 0.1, rules: [alert], hold_clinical: true}", "hello"));
}

TEST_CASE("variants are checked: ids, weights, the kind of action, the delay", "[rules]") {
  auto error = [](const std::string& variants) {
    auto set = RuleSet::Parse(R"(
rules:
  - id: hello
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: hello, channel: CHAT}}
    policy: {category: CARE, ttl: 1h}
    variants:
)" + variants,
                              "x.yaml");
    return set.ok() ? std::string("ok") : std::string(set.status().message());
  };
  CHECK(error("      - {id: a, weight: 1}\n      - {id: b, weight: 2, delay: 10m}") == "ok");
  CHECK(error("      - {id: a, weight: 0}") ==
        "x.yaml: rule hello: variants[0].weight: must be in (0, 1e6]");
  CHECK(error("      - {id: a, weight: 1}\n      - {id: a, weight: 1}") ==
        "x.yaml: rule hello: variants[1].id: used by an earlier variant");
  CHECK(error("      - {id: a, weight: 1, delay: 1h}") ==
        "x.yaml: rule hello: variants[0].delay: must be >= 0 and below the rule's ttl");
  CHECK(error("      - {id: a, weight: 1, action: {task: {template_id: t}}}") ==
        "x.yaml: rule hello: variants[0].action: must be of the rule's kind (a reminder, or a task)");
  CHECK(error("      - {id: a, weight: 1, action: {reminder: {template_id: t}}}") ==
        "x.yaml: rule hello: variants[0].action.reminder.channel: is required (CHAT, SMS, APP_PUSH)");
  CHECK(error("      - {id: a, weight: 1, action: {reminder: {template_id: t, channel: SMS, "
              "parameters: {x: \"{patient.nope}\"}}}}")
            .find("variants[0].action.reminder") != std::string::npos);
}

TEST_CASE("a rules file of nested aliases (a billion laughs) is refused, not expanded",
          "[rules]") {
  // Nine levels of ten aliases each: 10^9 comparisons in a file of under 1 KB.
  std::string when = "{compare: {field: patient.adherence.current_streak, op: GT, value: \"1\"}}";
  for (int level = 0; level < 9; ++level) {
    const std::string anchor = absl::StrCat("l", level);
    std::string list = absl::StrCat("&", anchor, " ", when);
    for (int i = 0; i < 9; ++i) absl::StrAppend(&list, ", *", anchor);
    when = absl::StrCat("{all: [", list, "]}");
  }
  const std::string yaml = absl::StrCat(
      "rules:\n  - id: laughs\n    version: 1\n    trigger: {event: {kind: check_in}}\n"
      "    when: ", when, "\n    action: {reminder: {template_id: t, channel: CHAT}}\n"
      "    policy: {category: CARE, priority: 1, cooldown: 1d, ttl: 1h}\n");
  REQUIRE(yaml.size() < 1024);
  CHECK_THAT(ErrorOf(yaml), Catch::Contains("values once its aliases (*name) are expanded"));
}

TEST_CASE("every section of the patient's view is read by its generated accessor, the same "
          "message reflection reads",
          "[rules]") {
  v1::PatientView view;
  view.mutable_adherence()->set_current_streak(7);
  view.mutable_churn()->set_days_since_last_activity(3);
  view.mutable_as_of()->set_seconds(1'800'000'000);
  (*view.mutable_adherence()->mutable_check_in_days_by_kind())["GLUCOSE"] = 12;
  view.mutable_profile()->mutable_next_birthday()->set_seconds(1'800'086'400);
  const auto* d = v1::PatientView::descriptor();
  const auto* r = view.GetReflection();
  int sections = 0;
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    INFO(f->name());
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      CHECK(SectionGetter(f) == nullptr);
      continue;
    }
    // A message field added to PatientView without a getter fails here (reflection would still
    // read it, only slower).
    REQUIRE(SectionGetter(f) != nullptr);
    CHECK(&SectionGetter(f)(view) == &r->GetMessage(view, f));
    ++sections;
  }
  CHECK(sections >= 11);
  CHECK(SectionGetter(v1::Event::descriptor()->FindFieldByName("scan")) == nullptr);
  // The same for the event's bodies: each read by its getter is the one reflection reads, set
  // or not.
  const google::protobuf::OneofDescriptor* body = v1::Event::descriptor()->FindOneofByName("body");
  REQUIRE(body != nullptr);
  CHECK(body->field_count() >= 11);
  for (int i = 0; i < body->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = body->field(i);
    INFO(f->name());
    REQUIRE(BodyGetter(f) != nullptr);
    v1::Event event;
    CHECK(&BodyGetter(f)(event) == &event.GetReflection()->GetMessage(event, f));  // unset
    event.GetReflection()->MutableMessage(&event, f);
    CHECK(&BodyGetter(f)(event) == &event.GetReflection()->GetMessage(event, f));
  }
  CHECK(BodyGetter(v1::Event::descriptor()->FindFieldByName("event_id")) == nullptr);
  CHECK(BodyGetter(v1::PatientView::descriptor()->FindFieldByName("churn")) == nullptr);
  // Paths through a section take it; others (a top-level field, the event) do not, and all
  // read what reflection reads.
  for (const char* text :
       {"patient.adherence.current_streak", "patient.churn.days_since_last_activity",
        "patient.as_of.seconds", "patient.unique_events", "event.scan.channel_id",
        "patient.adherence.check_in_days_by_kind[GLUCOSE]",  // a map through a section
        "patient.profile.next_birthday.seconds"}) {          // a message within one
    INFO(text);
    auto path = ResolveFieldPath(text);
    REQUIRE(path.ok());
    CHECK((path->section != nullptr) ==
          (path->root == FieldPath::Root::kPatient && path->chain.size() >= 2));
    CHECK((path->body != nullptr) == (path->root == FieldPath::Root::kEvent));
    FieldPath by_reflection = *path;
    by_reflection.section = nullptr;
    by_reflection.body = nullptr;
    v1::Event event;
    event.mutable_scan()->set_channel_id("qr-7");
    CHECK(ReadField(*path, view, &event).ToString() ==
          ReadField(by_reflection, view, &event).ToString());
    CHECK(ReadField(*path, view, nullptr).ToString() ==
          ReadField(by_reflection, view, nullptr).ToString());
  }
  auto streak = ResolveFieldPath("patient.adherence.current_streak");
  REQUIRE(streak.ok());
  CHECK(ReadField(*streak, view, nullptr).number == 7);
  auto glucose = ResolveFieldPath("patient.adherence.check_in_days_by_kind[GLUCOSE]");
  auto birthday = ResolveFieldPath("patient.profile.next_birthday.seconds");
  REQUIRE(glucose.ok());
  REQUIRE(birthday.ok());
  CHECK(ReadField(*glucose, view, nullptr).number == 12);
  CHECK(ReadField(*birthday, view, nullptr).number == 1'800'086'400);
}

// A scalar field set to a value of its own, and the path that names it.
struct SetScalar {
  std::string path;
  double number = 0;
  bool boolean = false;
  int enum_number = 0;
  std::string str;   // a string's
  std::string name;  // an enum value's
};

// Sets every scalar field of `m` and of the messages in it (not lists or maps) to a value of its
// own (enums to their last value, Timestamps' seconds too), each named `prefix` + its path, and
// requires a leaf getter for each: a scalar or Timestamp added without one fails here
// (reflection would still read it, only slower). Of a oneof, the member already set (the caller
// chose it), else the first.
void FillScalars(google::protobuf::Message* m, const std::string& prefix, int* n,
                 std::vector<SetScalar>* paths) {
  using google::protobuf::FieldDescriptor;
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string text = absl::StrCat(prefix, f->name());
    INFO(text);
    ++*n;
    if (const auto* oneof = f->containing_oneof();
        oneof != nullptr && r->HasOneof(*m, oneof) && r->GetOneofFieldDescriptor(*m, oneof) != f) {
      continue;  // another member was chosen
    }
    if (f->is_repeated()) {  // maps: reflection reads them; lists are not paths
      CHECK(LeafGetter(f) == nullptr);
      continue;
    }
    SetScalar set;
    set.path = text;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(m, f, 1000 + *n);
        set.number = 1000 + *n;
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(m, f, 1'000'000'000'000 + *n);
        set.number = 1'000'000'000'000.0 + *n;
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(m, f, 0.25 + *n);
        set.number = 0.25 + *n;
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(m, f, true);
        set.boolean = true;
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        set.str = absl::StrCat("s", *n);
        r->SetString(m, f, set.str);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* last = f->enum_type()->value(f->enum_type()->value_count() - 1);
        r->SetEnumValue(m, f, last->number());
        set.enum_number = last->number();
        set.name = last->name();
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (f->message_type() == google::protobuf::Timestamp::descriptor()) {
          static_cast<google::protobuf::Timestamp*>(r->MutableMessage(m, f))
              ->set_seconds(1'700'000'000 + *n);
          REQUIRE(LeafGetter(f, true) != nullptr);
          set.path += ".seconds";
          set.number = 1'700'000'000 + *n;
          paths->push_back(set);
        } else {  // a section, a body or a reading
          FillScalars(r->MutableMessage(m, f), text + ".", n, paths);
        }
        continue;
      default:
        FAIL("a field type the leaf getters do not read: " << f->type_name());
    }
    REQUIRE(LeafGetter(f) != nullptr);
    CHECK(LeafGetter(f, true) == nullptr);
    paths->push_back(set);
  }
}

// Each path read with its leaf getter and without it (by reflection): both give the value set,
// not a default read from an unset field (the two share FieldValue's making, so each is checked
// against what was set, not only against the other).
void RequireLeavesReadAsSet(const std::vector<SetScalar>& paths, const v1::PatientView& view,
                            const v1::Event* event) {
  for (const SetScalar& set : paths) {
    INFO(set.path);
    auto path = ResolveFieldPath(set.path);
    REQUIRE(path.ok());
    REQUIRE(path->leaf != nullptr);
    FieldPath by_reflection = *path;
    by_reflection.leaf = nullptr;
    const FieldValue fast = ReadField(*path, view, event);
    const FieldValue slow = ReadField(by_reflection, view, event);
    CHECK(fast.kind == slow.kind);
    CHECK(fast.number == slow.number);
    CHECK(fast.boolean == slow.boolean);
    CHECK(fast.enum_number == slow.enum_number);
    CHECK(fast.enum_type == slow.enum_type);
    CHECK(fast.str == slow.str);
    CHECK(fast.ToString() == slow.ToString());
    CHECK_FALSE((slow.number == 0 && !slow.boolean && slow.enum_number == 0 && slow.str.empty()));
    CHECK(fast.number == set.number);
    CHECK(fast.boolean == set.boolean);
    CHECK(fast.enum_number == set.enum_number);
    CHECK(fast.str == set.str);
    if (fast.kind == FieldValue::Kind::kEnum) {
      CHECK(fast.enum_type == path->value_field()->enum_type());
      CHECK(fast.ToString() == set.name);
    }
  }
}

TEST_CASE(
    "every scalar of the patient's view is read by its generated accessor, the value "
    "reflection reads",
    "[rules]") {
  v1::PatientView view;
  std::vector<SetScalar> paths;
  int n = 0;
  FillScalars(&view, "patient.", &n, &paths);
  CHECK(paths.size() >= 60);
  RequireLeavesReadAsSet(paths, view, nullptr);
  // Maps and a Timestamp's nanos have none.
  for (const char* text :
       {"patient.as_of.nanos", "patient.adherence.check_in_days_by_kind[GLUCOSE]"}) {
    INFO(text);
    auto path = ResolveFieldPath(text);
    REQUIRE(path.ok());
    CHECK(path->leaf == nullptr);
  }
}

TEST_CASE(
    "every scalar of an event and of each of its bodies is read by its generated "
    "accessor, the value reflection reads",
    "[rules]") {
  // One event per body (a oneof) and, for a body with a oneof of its own (a check-in's reading),
  // per member of that; the event's own fields set too. With no event, every field reads as its
  // default both ways.
  const auto* body = v1::Event::descriptor()->FindOneofByName("body");
  REQUIRE(body != nullptr);
  int n = 0, read = 0, events = 0;
  for (int i = 0; i < body->field_count(); ++i) {
    const auto* f = body->field(i);
    std::vector<const google::protobuf::FieldDescriptor*> members = {nullptr};
    for (int o = 0; o < f->message_type()->oneof_decl_count(); ++o) {
      const auto* inner = f->message_type()->oneof_decl(o);
      for (int j = 0; j < inner->field_count(); ++j) members.push_back(inner->field(j));
    }
    for (const auto* member : members) {
      INFO(f->name() << (member != nullptr ? " " + member->name() : std::string()));
      v1::Event event;
      auto* r = event.GetReflection();
      google::protobuf::Message* b = r->MutableMessage(&event, f);  // the body chosen
      if (member != nullptr) b->GetReflection()->MutableMessage(b, member);
      std::vector<SetScalar> paths;
      FillScalars(&event, "event.", &n, &paths);
      RequireLeavesReadAsSet(paths, v1::PatientView(), &event);
      for (const SetScalar& set : paths) {
        auto path = ResolveFieldPath(set.path);
        FieldPath by_reflection = *path;
        by_reflection.leaf = nullptr;
        CHECK(ReadField(*path, v1::PatientView(), nullptr).ToString() ==
              ReadField(by_reflection, v1::PatientView(), nullptr).ToString());
      }
      read += static_cast<int>(paths.size());
      ++events;
    }
  }
  CHECK(events >= 14);  // 11 bodies, a check-in with each of its four readings
  CHECK(read >= 60);
}

TEST_CASE("conditions compare typed values and explain themselves", "[rules]") {
  v1::Event event;
  event.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
  event.mutable_check_in()->mutable_glucose()->set_mmol_per_l(8.4);
  v1::Explanation trace;
  CompiledCondition c = Compile(
      "{all: [{compare: {field: patient.churn.stage, op: EQ, value: SILENT}},"
      "       {compare: {field: event.check_in.glucose.mmol_per_l, op: GT, value: \"7.0\"}},"
      "       {not: {compare: {field: patient.churn.p_alive, op: GE, value: \"0.5\"}}}]}");
  CHECK(c.Evaluate(View(), &event, &trace));
  REQUIRE(trace.checks_size() == 3);
  // An enum explains itself by its values' names, the rule's and the view's.
  CHECK(trace.checks(0).field() == "patient.churn.stage");
  CHECK(trace.checks(0).expected() == "SILENT");
  CHECK(trace.checks(0).actual() == "SILENT");
  CHECK(trace.checks(1).field() == "event.check_in.glucose.mmol_per_l");
  CHECK(trace.checks(1).op() == ">");
  CHECK(trace.checks(1).expected() == "7");
  CHECK(trace.checks(1).actual() == "8.4");
  CHECK(trace.checks(2).actual() == "0.42");
  CHECK_FALSE(trace.checks(2).held());  // the inner comparison failed, so `not` held

  event.mutable_check_in()->mutable_glucose()->set_mmol_per_l(6.1);
  CHECK_FALSE(c.Evaluate(View(), &event, nullptr));
  CHECK_FALSE(c.Evaluate(View(), nullptr, nullptr));  // no event: event fields read as zero

  CHECK(Compile("{any: [{compare: {field: patient.churn.stage, op: EQ, value: LOST}},"
                "       {compare: {field: patient.adherence.current_streak, op: GE, value: \"7\"}}]}")
            .Evaluate(View(), nullptr, nullptr));
  CHECK(Compile("{compare: {field: \"patient.adherence.check_in_days_by_kind[GLUCOSE]\", op: EQ, "
                "value: \"12\"}}")
            .Evaluate(View(), nullptr, nullptr));
  CHECK(Compile("{compare: {field: \"patient.adherence.check_in_days_by_kind[DIET]\", op: EQ, "
                "value: \"0\"}}")
            .Evaluate(View(), nullptr, nullptr));  // an absent entry reads as zero
  CHECK(Compile("{}").Evaluate(View(), nullptr, nullptr));
}

}  // namespace
}  // namespace tend
