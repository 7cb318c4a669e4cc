// The `tend` binary's subcommands. Each lives in its own file (tools/<name>_command.cc): its
// Add function declares the subcommand, its help and its flags on `app`, and returns what runs
// it once the command line parsed. main.cc holds the table of them; the work itself is done by
// the libraries (tools/commands.h, tools/replay.h, bench/bench.h, ...), which the tests call.
#ifndef TEND_TOOLS_SUBCOMMAND_H_
#define TEND_TOOLS_SUBCOMMAND_H_

#include <CLI/CLI.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/auth.h"
#include "engine/engine.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/props.h"
#include "rules/rules.h"

namespace tend {

// Runs a parsed subcommand until done or `stop`; returns the process's exit status.
using SubcommandRun = std::function<int(const std::atomic<bool>& stop)>;
// Declares a subcommand on `app`; the returned function owns the flags' storage.
using AddSubcommand = SubcommandRun (*)(CLI::App* app);

SubcommandRun AddArchiveCommand(CLI::App* app);
SubcommandRun AddBenchCommand(CLI::App* app);
SubcommandRun AddBrokerCommand(CLI::App* app);
SubcommandRun AddConfigCommand(CLI::App* app);
SubcommandRun AddDemoCommand(CLI::App* app);
SubcommandRun AddDumpCommand(CLI::App* app);
SubcommandRun AddEngineCommand(CLI::App* app);
SubcommandRun AddExplainCommand(CLI::App* app);
SubcommandRun AddFitChurnCommand(CLI::App* app);
SubcommandRun AddHealthCommand(CLI::App* app);
SubcommandRun AddProduceCommand(CLI::App* app);
SubcommandRun AddReplayCommand(CLI::App* app);
SubcommandRun AddReportCommand(CLI::App* app);
SubcommandRun AddUpliftCommand(CLI::App* app);
SubcommandRun AddRulesCommand(CLI::App* app);
SubcommandRun AddSimulateCommand(CLI::App* app);
SubcommandRun AddSinkCommand(CLI::App* app);
SubcommandRun AddTickerCommand(CLI::App* app);

// What the subcommands share.
//
// The exit status of `s`: 0, or 1 after printing "tend COMMAND: message" on stderr (the message
// with control characters escaped and cut to 4 KiB: it may quote hostile input).
int Exit(const absl::Status& s, const std::string& command);
// Parses an RFC 3339 time flag ("2026-01-01T00:00:00Z"); kInvalidArgument names `flag`.
absl::Status ParseTimeFlag(const std::string& flag, const std::string& text, absl::Time* out);
// `text` parsed into `*out` unless empty (then `*out` is left alone).
absl::Status ParseOptionalTimeFlag(const std::string& flag, const std::string& text,
                                   std::optional<absl::Time>* out);
// The rules file at `path`, loaded and checked; null for an empty path.
absl::StatusOr<std::shared_ptr<const RuleSet>> LoadRulesFlag(const std::string& path);
// Every --kafka KEY=VALUE appended to `props`; kInvalidArgument names the bad one.
absl::Status ParseKafkaFlags(const std::vector<std::string>& flags, KafkaProps* props);
// A command's librdkafka settings: --kafka-config FILE (kafka/props.h ReadKafkaConfigFile; keeps
// a SASL password out of the process list), then each --kafka KEY=VALUE (later wins).
struct KafkaFlags {
  std::string config_file;
  std::vector<std::string> props;
};
absl::Status ParseKafkaFlags(const KafkaFlags& flags, KafkaProps* props);
// Declares --kafka-config FILE and the repeatable --kafka KEY=VALUE.
void AddKafkaFlag(CLI::App* cmd, KafkaFlags* flags);
// Declares --cache-mb: the engine's write-back cache bound (EngineOptions::cache_max_bytes).
// `engine` is borrowed until the command has parsed its flags.
void AddCacheFlag(CLI::App* cmd, EngineOptions* engine);
// Declares --commit-interval-ms (1 to `max_interval_ms`) and --commit-max-records: when the
// engine commits (EngineOptions::commit_interval, commit_max_records). `engine` is borrowed
// until the command has parsed its flags.
void AddCommitFlags(CLI::App* cmd, EngineOptions* engine, int64_t max_interval_ms);

// --tls-cert, --tls-key, --tls-client-ca, --tokens, --plaintext, --no-tokens, --grpc-reflection:
// how a gRPC server of `cmd` listens (auth/auth.h ServerSecurity).
void AddServerSecurityFlags(CLI::App* cmd, ServerSecurity* security);
// `prefix`-tls-ca, -tls-cert, -tls-key, -token-file: how a client of `cmd` connects.
void AddClientSecurityFlags(CLI::App* cmd, const std::string& prefix, ClientSecurity* security);

}  // namespace tend

#endif  // TEND_TOOLS_SUBCOMMAND_H_
