#include "tools/backtest.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "base/json.h"
#include "base/status.h"
#include "base/temp_dir.h"

namespace tend {
namespace {

std::tuple<const std::string&, const std::string&, const std::string&> Key(
    const BacktestCommand& c) {
  return {c.patient_id, c.rule_id, c.trigger};
}

bool ByPatientTime(const BacktestCommand& a, const BacktestCommand& b) {
  return std::tie(a.patient_id, a.not_before_s, a.rule_id, a.trigger) <
         std::tie(b.patient_id, b.not_before_s, b.rule_id, b.trigger);
}

std::string Time(const std::optional<BacktestCommand>& c) {
  if (!c) return "null";
  return absl::StrCat("\"", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                             absl::FromUnixSeconds(c->not_before_s),
                                             absl::UTCTimeZone()),
                      "\"");
}

std::string Quoted(absl::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

const char* KindName(CommandChange::Kind k) {
  switch (k) {
    case CommandChange::Kind::kAdded: return "added";
    case CommandChange::Kind::kRemoved: return "removed";
    case CommandChange::Kind::kMoved: return "moved";
  }
  return "?";
}

}  // namespace

BacktestCommand FromCommand(const v1::ReminderCommand& c) {
  BacktestCommand b;
  b.patient_id = c.patient_id();
  b.rule_id = c.rule_id();
  b.rule_version = c.rule_version();
  b.trigger = c.trigger();
  b.template_id = c.template_id();
  b.recipient = v1::ReminderCommand::Recipient_Name(c.recipient());
  b.not_before_s = c.not_before().seconds();
  return b;
}

CommandDiff DiffCommands(std::vector<BacktestCommand> baseline,
                         std::vector<BacktestCommand> candidate) {
  CommandDiff diff;
  for (const auto& c : baseline) ++diff.per_rule[c.rule_id].baseline;
  for (const auto& c : candidate) ++diff.per_rule[c.rule_id].candidate;
  auto by_key = [](const BacktestCommand& a, const BacktestCommand& b) {
    return std::make_tuple(Key(a), a.not_before_s) < std::make_tuple(Key(b), b.not_before_s);
  };
  std::sort(baseline.begin(), baseline.end(), by_key);
  std::sort(candidate.begin(), candidate.end(), by_key);
  // Exact (patient, rule, trigger) matches: unchanged, or moved in time.
  std::vector<BacktestCommand> only_baseline, only_candidate;
  size_t i = 0, j = 0;
  while (i < baseline.size() || j < candidate.size()) {
    if (j == candidate.size() || (i < baseline.size() && Key(baseline[i]) < Key(candidate[j]))) {
      only_baseline.push_back(std::move(baseline[i++]));
    } else if (i == baseline.size() || Key(candidate[j]) < Key(baseline[i])) {
      only_candidate.push_back(std::move(candidate[j++]));
    } else {
      if (baseline[i].not_before_s != candidate[j].not_before_s) {
        diff.changes.push_back({CommandChange::Kind::kMoved, std::move(baseline[i]),
                                std::move(candidate[j])});
      }
      ++i;
      ++j;
    }
  }
  // The rest, per (patient, rule) in time order: pairs are moves, the remainder added/removed.
  std::sort(only_baseline.begin(), only_baseline.end(), ByPatientTime);
  std::sort(only_candidate.begin(), only_candidate.end(), ByPatientTime);
  std::map<std::pair<std::string, std::string>, std::vector<BacktestCommand>> left;
  for (auto& c : only_baseline) left[{c.patient_id, c.rule_id}].push_back(std::move(c));
  std::map<std::pair<std::string, std::string>, size_t> used;
  for (auto& c : only_candidate) {
    const std::pair<std::string, std::string> k{c.patient_id, c.rule_id};
    auto it = left.find(k);
    size_t& n = used[k];
    if (it != left.end() && n < it->second.size()) {
      diff.changes.push_back({CommandChange::Kind::kMoved, std::move(it->second[n++]),
                              std::move(c)});
    } else {
      diff.changes.push_back({CommandChange::Kind::kAdded, std::nullopt, std::move(c)});
    }
  }
  for (auto& [k, commands] : left) {
    for (size_t n = used[k]; n < commands.size(); ++n) {
      diff.changes.push_back({CommandChange::Kind::kRemoved, std::move(commands[n]), std::nullopt});
    }
  }
  std::sort(diff.changes.begin(), diff.changes.end(),
            [](const CommandChange& a, const CommandChange& b) {
              const BacktestCommand& x = a.any();
              const BacktestCommand& y = b.any();
              const int64_t ta = a.baseline ? a.baseline->not_before_s : x.not_before_s;
              const int64_t tb = b.baseline ? b.baseline->not_before_s : y.not_before_s;
              return std::tie(x.patient_id, ta, x.rule_id, x.trigger) <
                     std::tie(y.patient_id, tb, y.rule_id, y.trigger);
            });
  std::set<std::string> patients;
  for (const auto& c : diff.changes) {
    RuleTotals& t = diff.per_rule[c.any().rule_id];
    switch (c.kind) {
      case CommandChange::Kind::kAdded: ++t.added; break;
      case CommandChange::Kind::kRemoved: ++t.removed; break;
      case CommandChange::Kind::kMoved: ++t.moved; break;
    }
    patients.insert(c.any().patient_id);
  }
  diff.patients_changed = static_cast<int64_t>(patients.size());
  return diff;
}

void WriteChanges(const CommandDiff& diff, std::ostream& out) {
  for (const auto& c : diff.changes) {
    const BacktestCommand& any = c.any();
    const BacktestCommand& first = c.baseline ? *c.baseline : any;
    out << "{\"patient_id\":" << Quoted(any.patient_id) << ",\"change\":\"" << KindName(c.kind)
        << "\",\"rule_id\":" << Quoted(any.rule_id) << ",\"template_id\":"
        << Quoted(any.template_id) << ",\"recipient\":" << Quoted(any.recipient)
        << ",\"trigger\":" << Quoted(first.trigger) << ",\"baseline_at\":" << Time(c.baseline)
        << ",\"candidate_at\":" << Time(c.candidate) << ",\"baseline_version\":"
        << (c.baseline ? std::to_string(c.baseline->rule_version) : "null")
        << ",\"candidate_version\":"
        << (c.candidate ? std::to_string(c.candidate->rule_version) : "null") << "}\n";
  }
}

void WriteTotals(const CommandDiff& diff, std::ostream& out) {
  out << absl::StrFormat("%-28s %10s %10s %9s %9s %9s\n", "rule", "baseline", "new", "added",
                         "removed", "moved");
  RuleTotals all;
  for (const auto& [rule, t] : diff.per_rule) {
    out << absl::StrFormat("%-28s %10d %10d %9d %9d %9d\n", rule, t.baseline, t.candidate, t.added,
                           t.removed, t.moved);
    all.baseline += t.baseline;
    all.candidate += t.candidate;
    all.added += t.added;
    all.removed += t.removed;
    all.moved += t.moved;
  }
  out << absl::StrFormat("%-28s %10d %10d %9d %9d %9d\n", "(all)", all.baseline, all.candidate,
                         all.added, all.removed, all.moved);
  out << absl::StrFormat("patients with a change: %d\n", diff.patients_changed);
}

absl::StatusOr<CommandDiff> Backtest(const BacktestOptions& options,
                                     const std::atomic<bool>& stop, std::ostream& progress) {
  if (options.baseline == nullptr || options.candidate == nullptr) {
    return absl::InvalidArgumentError("a backtest needs --rules NEW.yaml and --baseline CURRENT.yaml");
  }
  if (options.diff_out.empty()) return absl::InvalidArgumentError("--diff OUT is required");
  TEND_ASSIGN_OR_RETURN(ScopedTempDir scratch, ScopedTempDir::Create("tend-backtest-"));
  std::vector<BacktestCommand> runs[2];
  const std::shared_ptr<const RuleSet> rules[2] = {options.baseline, options.candidate};
  const char* names[2] = {"baseline", "new"};
  for (int k = 0; k < 2; ++k) {
    progress << "backtest: replaying with the " << names[k] << " rules\n";
    ReplayOptions replay = options.replay;
    // The first replay's engines are destroyed before the second runs: they must free their
    // cache (a `tend replay` leaves it at exit).
    if (k == 0) replay.engine.leave_cache_at_exit = false;
    replay.to_dir = scratch.path() + "/" + names[k];
    replay.commands_out.clear();
    replay.engine.rules = rules[k];
    std::vector<BacktestCommand>* out = &runs[k];
    replay.engine.on_replay_command = [out](const v1::ReminderCommand& c) {
      out->push_back(FromCommand(c));
    };
    TEND_ASSIGN_OR_RETURN(ReplayReport report, Replay(replay, stop, progress));
    progress << absl::StrFormat("backtest: %s rules: %d records, %d commands, %.1f s\n", names[k],
                                report.stats.records, report.stats.commands,
                                absl::ToDoubleSeconds(report.elapsed));
    std::error_code ec;
    std::filesystem::remove_all(replay.to_dir, ec);  // disk back before the next run
  }
  CommandDiff diff = DiffCommands(std::move(runs[0]), std::move(runs[1]));
  TEND_RETURN_IF_ERROR(WriteFileAtomically(options.diff_out, [&](std::ostream& out) {
    WriteChanges(diff, out);
    return absl::OkStatus();
  }));
  return diff;
}

}  // namespace tend
