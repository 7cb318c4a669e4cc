#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/file.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "bench/bench.h"
#include "dev/mock_broker.h"

extern char** environ;

namespace tend {
namespace {

// Starts `argv` with stdout and stderr to `log`; its pid.
absl::StatusOr<pid_t> Start(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return absl::InternalError(absl::StrCat("starting ", argv[0], ": errno ", err));
  return pid;
}

// The records an engine's log says it read ("engine stopped: N records").
int64_t RecordsRead(const std::string& log_path) {
  auto log = ReadBoundedFile(log_path, int64_t{64} << 20);
  if (!log.ok()) return -1;
  const size_t at = log->rfind("engine stopped: ");
  return at == std::string::npos ? -1 : std::stoll(log->substr(at + 16));
}

}  // namespace

absl::Status RunProcessesBench(const ProcessesBenchOptions& options, std::ostream& out) {
  TEND_ASSIGN_OR_RETURN(BenchLog cohort, StartBenchLog(options.partitions, options.patients,
                                                       options.events, options.seed));
  MockBroker* broker = cohort.broker.get();
  const int64_t produced = cohort.records;
  int run = 0;
  for (int round = 0; round < options.repeat; ++round) {
    std::vector<int> counts = options.processes;
    if (round % 2 == 1) std::reverse(counts.begin(), counts.end());
    for (int n : counts) {
      ++run;
      TEND_ASSIGN_OR_RETURN(ScopedTempDir dir, ScopedTempDir::Create("tend-bench-procs-"));
      const std::string changelog = absl::StrCat("tend.bench.procs.changelog.", run);
      TEND_RETURN_IF_ERROR(broker->CreateTopic(changelog, options.partitions));
      std::cerr << "round " << round + 1 << "/" << options.repeat << ": " << n
                << " engine process(es)..." << std::endl;
      std::vector<pid_t> pids;
      std::vector<std::string> logs;
      const absl::Time start = absl::Now();
      for (int i = 0; i < n; ++i) {
        std::vector<std::string> argv = {options.tend_binary, "engine", "--brokers",
                                         broker->bootstrap(), "--db",
                                         absl::StrCat(dir.path(), "/db", i), "--group",
                                         absl::StrCat("tend-bench-procs-", run), "--changelog",
                                         changelog, "--exit-when-idle", "--status-interval-s",
                                         "0"};
        if (!options.rules_path.empty()) {
          argv.push_back("--rules");
          argv.push_back(options.rules_path);
        }
        logs.push_back(absl::StrCat(dir.path(), "/engine", i, ".log"));
        TEND_ASSIGN_OR_RETURN(const pid_t pid, Start(argv, logs.back()));
        pids.push_back(pid);
      }
      bool failed = false;
      for (pid_t pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
      }
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      int64_t read = 0;
      for (const std::string& log : logs) read += RecordsRead(log);
      if (failed) {
        return absl::InternalError(absl::StrCat("an engine failed; its log is in ", logs[0],
                                                " (kept: the directory is removed only on "
                                                "success)"));
      }
      out << absl::StrFormat(
                 "{\"processes\":%d,\"round\":%d,\"events\":%d,\"partitions\":%d,"
                 "\"seconds\":%.2f,\"eps\":%.0f,\"records_read\":%d}",
                 n, round + 1, produced, options.partitions, seconds, produced / seconds, read)
          << std::endl;
    }
  }
  return absl::OkStatus();
}

}  // namespace tend
