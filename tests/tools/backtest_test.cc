// tend replay --baseline: the command diff on its own, and a backtest of a threshold change
// through a real Kafka-protocol broker (librdkafka's mock cluster) and RocksDB in temp dirs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "dev/mock_broker.h"
#include "tests/testing.h"
#include "tools/backtest.h"

namespace tend {
namespace {

BacktestCommand Cmd(const std::string& patient, const std::string& rule,
                    const std::string& trigger, int64_t at) {
  BacktestCommand c;
  c.patient_id = patient;
  c.rule_id = rule;
  c.rule_version = 1;
  c.trigger = trigger;
  c.template_id = rule + "-template";
  c.recipient = "PATIENT";
  c.not_before_s = at;
  return c;
}

TEST_CASE("the command diff: unchanged, moved in time, moved to another trigger, added, "
          "removed") {
  std::vector<BacktestCommand> baseline = {
      Cmd("p1", "welcome", "event:e1", 100),         // unchanged
      Cmd("p1", "no-bp", "absence:50", 300),         // same trigger, earlier: moved
      Cmd("p2", "streak", "became:e9", 900),         // another trigger: moved
      Cmd("p3", "streak", "became:e4", 400),         // gone: removed
  };
  std::vector<BacktestCommand> candidate = {
      Cmd("p1", "welcome", "event:e1", 100),
      Cmd("p1", "no-bp", "absence:50", 200),
      Cmd("p2", "streak", "became:e7", 700),
      Cmd("p2", "streak", "became:e12", 1200),       // a second one: added
      Cmd("p4", "welcome", "event:e5", 500),         // new patient: added
  };
  CommandDiff diff = DiffCommands(baseline, candidate);
  REQUIRE(diff.changes.size() == 5);
  CHECK(diff.patients_changed == 4);
  const auto& w = diff.per_rule.at("welcome");
  CHECK((w.baseline == 1 && w.candidate == 2 && w.added == 1 && w.removed == 0 && w.moved == 0));
  const auto& n = diff.per_rule.at("no-bp");
  CHECK((n.baseline == 1 && n.candidate == 1 && n.moved == 1 && n.added == 0));
  const auto& s = diff.per_rule.at("streak");
  CHECK((s.baseline == 2 && s.candidate == 2 && s.moved == 1 && s.added == 1 && s.removed == 1));

  // Ordered by patient, then time.
  CHECK(diff.changes[0].kind == CommandChange::Kind::kMoved);
  CHECK(diff.changes[0].baseline->not_before_s == 300);
  CHECK(diff.changes[0].candidate->not_before_s == 200);
  CHECK(diff.changes[1].kind == CommandChange::Kind::kMoved);
  CHECK(diff.changes[1].candidate->trigger == "became:e7");
  CHECK(diff.changes[2].kind == CommandChange::Kind::kAdded);
  CHECK(diff.changes[3].kind == CommandChange::Kind::kRemoved);
  CHECK(diff.changes[3].baseline->patient_id == "p3");
  CHECK(diff.changes[4].candidate->patient_id == "p4");

  std::ostringstream out;
  WriteChanges(diff, out);
  std::string first;
  std::getline(std::istringstream(out.str()), first);
  CHECK(first ==
        "{\"patient_id\":\"p1\",\"change\":\"moved\",\"rule_id\":\"no-bp\",\"template_id\":"
        "\"no-bp-template\",\"recipient\":\"PATIENT\",\"trigger\":\"absence:50\",\"baseline_at\":"
        "\"1970-01-01T00:05:00Z\",\"candidate_at\":\"1970-01-01T00:03:20Z\",\"baseline_version\":"
        "1,\"candidate_version\":1}");
  std::ostringstream totals;
  WriteTotals(diff, totals);
  CHECK_THAT(totals.str(), Catch::Contains("patients with a change: 4"));
}

constexpr char kRules[] = R"(rules:
  - id: welcome
    version: 1
    trigger: {event: {kind: scan}}
    when: {compare: {field: patient.acquisition.scans, op: EQ, value: "1"}}
    action:
      reminder: {template_id: welcome, channel: CHAT}
    policy: {category: CLINICAL, priority: 40, ttl: 48h}
  - id: no-bp
    version: VERSION
    trigger:
      absence:
        kind: check_in
        filter: {compare: {field: event.check_in.kind, op: EQ, value: BLOOD_PRESSURE}}
        after: AFTER
    action:
      reminder: {template_id: bp-nudge, channel: CHAT}
    policy: {category: CLINICAL, priority: 50, cooldown: 1d, ttl: 48h}
)";

std::shared_ptr<const RuleSet> Rules(const std::string& version, const std::string& after) {
  const std::string yaml =
      absl::StrReplaceAll(kRules, {{"VERSION", version}, {"AFTER", after}});
  auto rules = RuleSet::Parse(yaml, "test.yaml");
  REQUIRE(rules.ok());
  return std::make_shared<const RuleSet>(*std::move(rules));
}

TEST_CASE("a backtest of a shorter absence window: the untouched rule does not change, the "
          "changed one fires earlier and more often",
          "[integration]") {
  const auto broker = testing::BrokerWith(testing::Cohort(150, 40, 5));

  testing::TempDir dir;
  BacktestOptions options;
  options.replay.engine.brokers = broker->bootstrap();
  options.baseline = Rules("1", "4d");
  options.candidate = Rules("2", "2d");
  options.diff_out = dir.Sub("diff.jsonl");
  std::ostringstream progress;
  std::atomic<bool> stop{false};
  auto diff = Backtest(options, stop, progress);
  REQUIRE(diff.ok());

  const RuleTotals welcome = diff->per_rule.at("welcome");
  CHECK(welcome.baseline > 0);
  CHECK(welcome.candidate == welcome.baseline);
  CHECK((welcome.added == 0 && welcome.removed == 0 && welcome.moved == 0));
  const RuleTotals nudge = diff->per_rule.at("no-bp");
  CHECK(nudge.baseline > 0);
  CHECK(nudge.candidate > nudge.baseline);  // two silent days happen more often than four
  CHECK(nudge.added > 0);
  CHECK(nudge.moved > 0);
  for (const auto& [rule, t] : diff->per_rule) {
    INFO(rule);
    CHECK(t.baseline - t.removed + t.added == t.candidate);
  }
  // Moves of the same silence go earlier, and line up across the version change.
  int same_silence = 0;
  for (const auto& c : diff->changes) {
    if (c.kind != CommandChange::Kind::kMoved || c.baseline->trigger != c.candidate->trigger) {
      continue;
    }
    ++same_silence;
    CHECK(c.candidate->not_before_s < c.baseline->not_before_s);
    CHECK(c.baseline->rule_version == 1);
    CHECK(c.candidate->rule_version == 2);
  }
  CHECK(same_silence > 0);  // else the loop above checked nothing
  std::ifstream in(options.diff_out);
  int64_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  CHECK(lines == static_cast<int64_t>(diff->changes.size()));
}

// A backtest's answer, change by change and rule by rule, as comparable lines.
std::vector<std::string> Lines(const CommandDiff& diff) {
  std::vector<std::string> out;
  auto side = [](const std::optional<BacktestCommand>& c) {
    return c ? absl::StrCat(c->patient_id, "/", c->rule_id, "/", c->trigger, "@", c->not_before_s)
             : std::string("-");
  };
  for (const CommandChange& c : diff.changes) {
    out.push_back(absl::StrCat(static_cast<int>(c.kind), " ", side(c.baseline), " ",
                               side(c.candidate)));
  }
  for (const auto& [rule, t] : diff.per_rule) {
    out.push_back(absl::StrCat(rule, ": ", t.baseline, " ", t.candidate, " ", t.added, " ",
                               t.removed, " ", t.moved));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("a backtest --until compares the commands decided from the records stamped up to the "
          "time, as if the log ended there",
          "[integration]") {
  const std::vector<v1::Event> log = testing::Cohort(150, 40, 5);
  const int64_t until_s = log[log.size() / 2].recorded_at().seconds();
  std::vector<v1::Event> before;
  for (const v1::Event& e : log) {
    if (e.recorded_at().seconds() <= until_s) before.push_back(e);
  }
  REQUIRE(before.size() < log.size());

  auto backtest = [](const std::vector<v1::Event>& events, std::optional<absl::Time> until,
                     const std::string& diff_out) {
    const auto broker = testing::BrokerWith(events);
    BacktestOptions options;
    options.replay.engine.brokers = broker->bootstrap();
    options.replay.engine.end_at = until;
    options.baseline = Rules("1", "4d");
    options.candidate = Rules("2", "2d");
    options.diff_out = diff_out;
    std::ostringstream progress;
    std::atomic<bool> stop{false};
    auto diff = Backtest(options, stop, progress);
    REQUIRE(diff.ok());
    return *std::move(diff);
  };
  testing::TempDir dir;
  const CommandDiff until =
      backtest(log, absl::FromUnixSeconds(until_s), dir.Sub("until.jsonl"));
  const CommandDiff cut = backtest(before, std::nullopt, dir.Sub("cut.jsonl"));
  const CommandDiff whole = backtest(log, std::nullopt, dir.Sub("whole.jsonl"));
  CHECK(!until.changes.empty());
  CHECK(Lines(until) == Lines(cut));
  // And not the whole log's answer: the later records decided more.
  CHECK(until.per_rule.at("no-bp").baseline < whole.per_rule.at("no-bp").baseline);
}

}  // namespace
}  // namespace tend
