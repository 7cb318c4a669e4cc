// tend sink: the reference tend.v1.ReminderSink (tools/commands.h RunSink).
#include <iostream>

#include "tools/commands.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddSinkCommand(CLI::App* app) {
  auto sink = std::make_shared<SinkOptions>();
  auto* cmd = app->add_subcommand(
      "sink", "Reference tend.v1.ReminderSink: accepts each command once (dedupe on command_id), "
              "records them as JSON lines.");
  cmd->add_option("--listen", sink->listen, "address to serve on")->capture_default_str();
  cmd->add_option("--out", sink->out_path,
                  "append accepted commands here (read back on start to dedupe across "
                  "restarts)");
  AddServerSecurityFlags(cmd, &sink->security);
  cmd->add_option("--metrics-listen", sink->metrics_listen,
                  "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9465");
  return [sink](const std::atomic<bool>& stop) {
    return Exit(RunSink(*sink, stop, std::cout), "sink");
  };
}

}  // namespace tend
