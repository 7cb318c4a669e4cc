#include "tools/replay.h"

#include <filesystem>
#include <fstream>
#include <ostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/json.h"
#include "engine/kafka.h"
#include "engine/log.h"
#include "engine/status.h"
#include "engine/storage.h"

namespace tend {
namespace {

namespace fs = std::filesystem;

// 1234567 -> "1,234,567".
std::string Grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2fM/s", per_second / 1e6);
  if (per_second >= 1e3) return absl::StrFormat("%.1fk/s", per_second / 1e3);
  return absl::StrFormat("%.0f/s", per_second);
}

std::string Eta(int64_t done, int64_t total, double per_second) {
  if (per_second <= 0 || done >= total) return "-";
  const int64_t s = static_cast<int64_t>((total - done) / per_second);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

// Records in the topic now: the sum over partitions of high - low watermark.
absl::StatusOr<int64_t> RecordsInLog(const EngineOptions& engine) {
  KafkaProps props = {{"bootstrap.servers", engine.brokers}};
  props.insert(props.end(), engine.kafka.begin(), engine.kafka.end());
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create(props));
  TEND_ASSIGN_OR_RETURN(int partitions, TopicPartitionCount(producer->handle(), engine.topic));
  int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(producer->handle(),
                                                             engine.topic.c_str(), p, &low,
                                                             &high, /*timeout_ms=*/10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return FromKafka(e, absl::StrCat("reading the offsets of ", engine.topic, "[", p, "]"));
    }
    total += high - low;
  }
  return total;
}

absl::Status CheckNewDirectory(const std::string& dir, const std::string& partial) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !(fs::is_directory(dir, ec) && fs::is_empty(dir, ec))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--to ", dir, ": exists and is not empty. A replay builds a NEW state directory and "
        "never touches an existing one: choose a new path"));
  }
  if (fs::exists(partial, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        partial, " exists: an earlier replay into ", dir,
        " did not finish. Remove it (rm -r ", partial, ") and run the replay again"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FormatProgressBar(int64_t done, int64_t total, double per_second, int width) {
  const double fraction =
      total <= 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const int filled = static_cast<int>(fraction * width);
  std::string bar(static_cast<size_t>(width), ' ');
  for (int i = 0; i < filled; ++i) bar[static_cast<size_t>(i)] = '=';
  if (filled < width) bar[static_cast<size_t>(filled)] = '>';
  return absl::StrFormat("[%s] %5.1f%%  %s/%s records  %s  ETA %s", bar, fraction * 100,
                         Grouped(done), Grouped(total), Rate(per_second),
                         Eta(done, total, per_second));
}

absl::StatusOr<ReplayReport> Replay(const ReplayOptions& options, const std::atomic<bool>& stop,
                                    std::ostream& progress) {
  if (options.to_dir.empty()) return absl::InvalidArgumentError("--to DIR is required");
  const std::string dir = fs::path(options.to_dir).lexically_normal().string();
  const std::string partial = (fs::path(dir).parent_path() /
                               (fs::path(dir).filename().string() + ".partial"))
                                  .string();
  TEND_RETURN_IF_ERROR(CheckNewDirectory(dir, partial));

  ReplayReport report;
  TEND_ASSIGN_OR_RETURN(report.records_in_log, RecordsInLog(options.engine));

  EngineOptions engine_options = options.engine;
  engine_options.mode = EngineOptions::Mode::kReplay;
  engine_options.exit_when_idle = true;
  if (engine_options.group_id.empty() || engine_options.group_id == EngineOptions().group_id) {
    // Its own group: the live engine's lag metrics stay its own.
    engine_options.group_id = absl::StrCat("tend-replay-", absl::ToUnixNanos(absl::Now()));
  }
  std::ofstream commands;
  const std::string commands_partial = options.commands_out + ".partial";
  JsonWriter json;
  std::string line;
  if (!options.commands_out.empty()) {
    commands.open(commands_partial, std::ios::trunc);
    if (!commands) {
      return absl::InvalidArgumentError(
          absl::StrCat("--commands-out ", options.commands_out, ": cannot write ",
                       commands_partial));
    }
    engine_options.on_replay_command = [&](const v1::ReminderCommand& c) {
      if (json.Write(c, &line).ok()) commands << line << '\n';
    };
  }

  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(partial));
  TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
  const absl::Time start = absl::Now();
  absl::Status run_status;
  std::atomic<bool> done{false};
  std::thread runner([&] {
    run_status = engine->Run(stop);
    done = true;
  });
  absl::Time last_line = start;
  const absl::Duration tick =
      options.progress_bar ? absl::Milliseconds(250) : std::min(options.progress_every,
                                                                absl::Seconds(1));
  while (!done.load()) {
    absl::SleepFor(tick);
    const absl::Time now = absl::Now();
    const int64_t records = engine->stats().records;
    const double rate = records / std::max(1e-9, absl::ToDoubleSeconds(now - start));
    if (options.progress_bar) {
      progress << '\r' << FormatProgressBar(records, report.records_in_log, rate, 30)
               << std::flush;
    } else if (now - last_line >= options.progress_every) {
      last_line = now;
      progress << absl::StrFormat("replay: %s/%s records (%.1f%%), %s, ETA %s\n",
                                  Grouped(records), Grouped(report.records_in_log),
                                  report.records_in_log > 0
                                      ? 100.0 * records / report.records_in_log
                                      : 100.0,
                                  Rate(rate), Eta(records, report.records_in_log, rate))
               << std::flush;
    }
  }
  runner.join();
  report.elapsed = absl::Now() - start;
  report.stats = engine->stats();
  report.records_per_second =
      report.stats.records / std::max(1e-9, absl::ToDoubleSeconds(report.elapsed));
  if (options.progress_bar) {
    progress << '\r'
             << FormatProgressBar(report.stats.records, report.stats.records,
                                  report.records_per_second, 30)
             << '\n';
  }
  engine.reset();
  storage.reset();  // closed before the directory moves
  if (commands.is_open()) commands.close();
  if (!run_status.ok()) {
    return absl::Status(run_status.code(),
                        absl::StrCat(run_status.message(), " (the unfinished rebuild is in ",
                                     partial, ")"));
  }
  if (stop.load()) {
    return absl::CancelledError(absl::StrCat("replay stopped before the end of the log; the "
                                             "unfinished rebuild is in ", partial));
  }
  if (commands.fail()) {
    return absl::DataLossError(absl::StrCat("writing ", commands_partial, " failed"));
  }
  std::error_code ec;
  if (fs::exists(dir, ec)) fs::remove(dir, ec);  // the empty directory CheckNewDirectory allowed
  fs::rename(partial, dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("renaming ", partial, " to ", dir, ": ", ec.message()));
  }
  if (!options.commands_out.empty()) {
    fs::rename(commands_partial, options.commands_out, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("renaming ", commands_partial, " to ",
                                              options.commands_out, ": ", ec.message()));
    }
  }
  return report;
}

}  // namespace tend
