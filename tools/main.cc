// `tend`: the one binary. A table of subcommands, each declared and run by its own file
// (tools/subcommand.h); main parses the command line and runs the one given.
#include <CLI/CLI.hpp>

#include <utility>
#include <vector>

#include "base/protobuf_log.h"
#include "tools/signals.h"
#include "tools/subcommand.h"

int main(int argc, char** argv) {
  using namespace tend;
  RouteProtobufLog();  // before any thread parses hostile input
  // In the order `tend --help` lists them.
  static constexpr AddSubcommand kSubcommands[] = {
      AddBrokerCommand,  AddEngineCommand, AddTickerCommand,  AddSimulateCommand,
      AddProduceCommand, AddDumpCommand,   AddFitChurnCommand, AddConfigCommand,
      AddDemoCommand,    AddBenchCommand,  AddSinkCommand,    AddExplainCommand,
      AddRulesCommand,   AddReplayCommand, AddReportCommand,  AddUpliftCommand,
      AddArchiveCommand,
      AddHealthCommand,
  };
  CLI::App app{"tend: event-sourced patient-engagement engine"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, SubcommandRun>> runs;
  for (AddSubcommand add : kSubcommands) {
    SubcommandRun run = add(&app);
    CLI::App* cmd = app.get_subcommands([](CLI::App*) { return true; }).back();
    runs.emplace_back(cmd, std::move(run));
  }
  CLI11_PARSE(app, argc, argv);
  std::atomic<bool>& stop = InstallStopSignals();
  for (auto& [cmd, run] : runs) {
    if (*cmd) return run(stop);
  }
  return 0;
}
