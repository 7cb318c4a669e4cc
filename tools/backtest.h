// tend replay --rules NEW.yaml --baseline CURRENT.yaml --diff OUT: a backtest. The log (or an
// archive) is replayed twice in REPLAY mode — once with each rule set, each into a scratch state
// directory that is removed afterwards — and the commands each run decided are compared patient
// by patient, so an operator sees what a rule change would have done before shipping it.
//
// Matching: a command is identified by (patient, rule id, trigger) — the rule version is left
// out, so a new version of a rule lines up with the old one. Present in both runs at different
// times (not_before): moved. Left over after that, per (patient, rule) in time order, the i-th
// baseline command pairs with the i-th new one as moved (a changed threshold fires on another
// event); what remains is removed (baseline only) or added (new only).
//
// Thread safety: Backtest() blocks its caller; DiffCommands is pure.
#ifndef TEND_TOOLS_BACKTEST_H_
#define TEND_TOOLS_BACKTEST_H_

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/rules.h"
#include "tend/v1/commands.pb.h"
#include "tools/replay.h"

namespace tend {

// What the diff keeps of a command.
struct BacktestCommand {
  std::string patient_id;
  std::string rule_id;
  int rule_version = 0;
  std::string trigger;
  std::string template_id;
  std::string recipient;  // PATIENT or STAFF
  int64_t not_before_s = 0;
};
BacktestCommand FromCommand(const v1::ReminderCommand& c);

struct CommandChange {
  enum class Kind { kAdded, kRemoved, kMoved };
  Kind kind = Kind::kAdded;
  // kRemoved: baseline only; kAdded: candidate only; kMoved: both.
  std::optional<BacktestCommand> baseline;
  std::optional<BacktestCommand> candidate;
  const BacktestCommand& any() const { return candidate ? *candidate : *baseline; }
};

struct RuleTotals {
  int64_t baseline = 0;   // commands the baseline rules decided
  int64_t candidate = 0;  // commands the new rules decided
  int64_t added = 0;
  int64_t removed = 0;
  int64_t moved = 0;
};

struct CommandDiff {
  std::vector<CommandChange> changes;  // by patient, then time, then rule
  std::map<std::string, RuleTotals> per_rule;
  int64_t patients_changed = 0;
};

CommandDiff DiffCommands(std::vector<BacktestCommand> baseline,
                         std::vector<BacktestCommand> candidate);

// One JSON object per change: {"patient_id","change","rule_id","template_id","recipient",
// "trigger" (baseline's for moved and removed), "baseline_at","candidate_at" (RFC 3339 or null),
// "baseline_version","candidate_version"}.
void WriteChanges(const CommandDiff& diff, std::ostream& out);
// The per-rule totals as an aligned table.
void WriteTotals(const CommandDiff& diff, std::ostream& out);

struct BacktestOptions {
  // The source (engine.brokers or archive_path), topic, projections and kafka; to_dir,
  // commands_out and engine.rules are set by Backtest().
  ReplayOptions replay;
  std::shared_ptr<const RuleSet> baseline;
  std::shared_ptr<const RuleSet> candidate;
  std::string diff_out;  // written as OUT.partial, renamed when complete
};

absl::StatusOr<CommandDiff> Backtest(const BacktestOptions& options,
                                     const std::atomic<bool>& stop, std::ostream& progress);

}  // namespace tend

#endif  // TEND_TOOLS_BACKTEST_H_
