#include "tools/replay.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "events/codec.h"
#include "kafka/archive.h"
#include "base/json.h"
#include "kafka/consumer.h"
#include "kafka/kafka.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/storage.h"

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
  TEND_ASSIGN_OR_RETURN(auto offsets, TopicWatermarks(producer->handle(), engine.topic));
  int64_t total = 0;
  for (const PartitionOffsets& o : offsets) total += o.high - o.low;
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

// Progress of a long run on `out`: a bar redrawn in place, or a line every `every`.
class Progress {
 public:
  Progress(std::ostream& out, bool bar, absl::Duration every, std::string what)
      : out_(out), bar_(bar), every_(every), what_(std::move(what)) {}
  // How often Show() should be called.
  absl::Duration tick() const {
    return bar_ ? absl::Milliseconds(250) : std::min(every_, absl::Seconds(1));
  }
  void Show(int64_t done, int64_t total) {
    const absl::Time now = absl::Now();
    const double rate = done / std::max(1e-9, absl::ToDoubleSeconds(now - start_));
    if (bar_) {
      out_ << '\r' << FormatProgressBar(done, total, rate, 30) << std::flush;
    } else if (now - last_line_ >= every_) {
      last_line_ = now;
      out_ << absl::StrFormat("%s: %s/%s records (%.1f%%), %s, ETA %s\n", what_, Grouped(done),
                              Grouped(total), total > 0 ? 100.0 * done / total : 100.0,
                              Rate(rate), Eta(done, total, rate))
           << std::flush;
    }
  }
  void Done(int64_t done) {
    if (!bar_) return;
    const double rate = done / std::max(1e-9, absl::ToDoubleSeconds(absl::Now() - start_));
    out_ << '\r' << FormatProgressBar(done, done, rate, 30) << '\n' << std::flush;
  }

 private:
  std::ostream& out_;
  const bool bar_;
  const absl::Duration every_;
  const std::string what_;
  const absl::Time start_ = absl::Now();
  absl::Time last_line_ = absl::Now();
};

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
  EngineOptions engine_options = options.engine;
  if (options.fold_threads < 1 || options.fold_threads > kMaxFoldThreads) {
    return absl::InvalidArgumentError(absl::StrCat("--fold-threads ", options.fold_threads,
                                                   ": give 1 to ", kMaxFoldThreads));
  }
  if (options.fold_threads > 1 && options.archive_path.empty()) {
    return absl::InvalidArgumentError(
        "--fold-threads above 1 needs --archive for now: a replay from Kafka folds on one "
        "thread (export the topic with tend archive first)");
  }
  // One reader of the archive per fold thread (each thread's engine reads its own partitions).
  std::vector<std::unique_ptr<ArchiveReader>> readers;
  ArchiveReader* archive = nullptr;
  if (!options.archive_path.empty()) {
    TEND_ASSIGN_OR_RETURN(auto first, ArchiveReader::Open(options.archive_path));
    readers.push_back(std::move(first));
    archive = readers.front().get();
    // No more threads than partitions: each has a range of at least one.
    const int threads = std::min(options.fold_threads, std::max(1, archive->header().partitions()));
    while (static_cast<int>(readers.size()) < threads) {
      TEND_ASSIGN_OR_RETURN(auto more, ArchiveReader::Open(options.archive_path));
      readers.push_back(std::move(more));
    }
    const v1::ArchiveHeader& h = archive->header();
    for (int p = 0; p < h.high_offsets_size() && p < h.low_offsets_size(); ++p) {
      report.records_in_log += h.high_offsets(p) - h.low_offsets(p);
    }
    engine_options.brokers.clear();  // no Kafka at all
    engine_options.topic = h.topic();
    if (!h.partition_major() && h.partitions() > 1) {
      progress << options.archive_path
               << " interleaves its partitions (an archive written before 2026-12-02): it is "
                  "folded as it is, every partition's patients at once. An archive written "
                  "now (`tend archive`, `tend simulate --archive`) holds its partitions one "
                  "after another and is folded a partition at a time: a population larger than "
                  "the cache costs much less (docs/design.md, \"Replay partition by "
                  "partition\")\n";
    }
  } else {
    TEND_ASSIGN_OR_RETURN(report.records_in_log, RecordsInLog(options.engine));
  }

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

  // Unlogged: a replay that stops is never resumed (its partial directory is refused, removed
  // and replayed again), so its commits skip the WAL; FinishUnlogged makes it whole at the end.
  StorageOptions storage_options;
  storage_options.unlogged = true;
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(partial, storage_options));
  // Several engines, each folding a range of the partitions into the one directory on a thread
  // of its own, with its own reader of the archive and a share of the cache (docs/design.md,
  // "Fold threads"). State is partition-scoped, so they share nothing but RocksDB.
  const int threads = std::max(1, static_cast<int>(readers.size()));
  std::mutex commands_mu;  // the engines hand on commands from their own threads
  if (threads > 1 && engine_options.on_replay_command) {
    engine_options.on_replay_command = [&commands_mu, inner = engine_options.on_replay_command](
                                           const v1::ReminderCommand& c) {
      std::lock_guard<std::mutex> lock(commands_mu);
      inner(c);
    };
  }
  engine_options.cache_max_bytes = std::max<int64_t>(1, engine_options.cache_max_bytes / threads);
  std::vector<std::unique_ptr<Engine>> engines;
  for (int k = 0; k < threads; ++k) {
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    engines.push_back(std::move(engine));
  }
  auto stats = [&engines] {
    EngineStats total;
    for (const auto& engine : engines) AddEngineStats(engine->stats(), &total);
    return total;
  };
  const absl::Time start = absl::Now();
  // Set by the caller's stop, or by the first engine to fail: it stops the others.
  std::atomic<bool> any_stop{false};
  std::vector<absl::Status> run_statuses(engines.size());
  std::atomic<int> running{static_cast<int>(engines.size())};
  std::vector<std::thread> runners;
  for (size_t k = 0; k < engines.size(); ++k) {
    runners.emplace_back([&, k] {
      absl::Status s;
      if (archive) {
        // The engine refuses a value over kMaxEventBytes: a longer one need not be held whole.
        ArchiveSource source(readers[k].get(), kMaxEventBytes);
        if (threads > 1) {
          const int partitions = archive->header().partitions();
          source.ServeOnly(static_cast<int32_t>(k * partitions / threads),
                           static_cast<int32_t>((k + 1) * partitions / threads - 1),
                           archive->header().partition_major());
        }
        s = engines[k]->RunFrom(&source, any_stop);
      } else {
        s = engines[k]->Run(any_stop);
      }
      if (!s.ok()) any_stop = true;  // the replay has failed
      run_statuses[k] = std::move(s);
      running.fetch_sub(1);
    });
  }
  Progress shown(progress, options.progress_bar, options.progress_every, "replay");
  while (running.load() > 0) {
    absl::SleepFor(std::min(shown.tick(), absl::Milliseconds(100)));
    if (stop.load()) any_stop = true;
    const EngineStats now = stats();
    // Records passed over (--from, --until) are read too.
    shown.Show(now.records + now.records_before_start + now.records_past_end,
               report.records_in_log);
  }
  for (std::thread& t : runners) t.join();
  absl::Status run_status;
  for (absl::Status& s : run_statuses) {
    if (!s.ok()) {
      run_status = s;
      break;
    }
  }
  report.stats = stats();
  shown.Done(report.stats.records + report.stats.records_before_start +
             report.stats.records_past_end);
  engines.clear();
  if (run_status.ok() && !stop.load()) {
    progress << "replay: writing the state's tables\n";
    run_status = storage->FinishUnlogged();
  }
  // The rate counts the final flush: a rebuild is done when its tables are written.
  report.elapsed = absl::Now() - start;
  report.records_per_second =
      report.stats.records / std::max(1e-9, absl::ToDoubleSeconds(report.elapsed));
  storage.reset();  // closed before the directory moves
  if (commands.is_open()) commands.close();
  if (!options.commands_out.empty()) {
    if (!run_status.ok() || stop.load()) std::remove(commands_partial.c_str());
  }
  if (!run_status.ok()) {
    return absl::Status(run_status.code(),
                        absl::StrCat(run_status.message(), ". A replay does not resume: remove "
                                     "the unfinished rebuild (rm -r ", partial,
                                     ") and run the replay again"));
  }
  if (stop.load()) {
    return absl::CancelledError(absl::StrCat("replay stopped before the end of the log. A "
                                             "replay does not resume: remove the unfinished "
                                             "rebuild (rm -r ", partial,
                                             ") and run the replay again"));
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

absl::StatusOr<ArchiveReport> ExportArchive(const ArchiveOptions& options,
                                            const std::atomic<bool>& stop,
                                            std::ostream& progress) {
  if (options.out.empty()) return absl::InvalidArgumentError("--out FILE is required");
  KafkaProps props = {
      {"bootstrap.servers", options.brokers},
      {"group.id", "tend-archive"},  // never joined nor committed: partitions are assigned
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "true"},
      // A low watermark deleted before its partition's turn (retention) is an error, not a
      // silent jump to the end.
      {"auto.offset.reset", "error"},
  };
  for (auto& prop : PrefetchProps()) props.push_back(std::move(prop));
  props.insert(props.end(), options.kafka.begin(), options.kafka.end());
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf(props));
  char err[512];
  KafkaHandle consumer(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err)));
  if (consumer == nullptr) return absl::InvalidArgumentError(absl::StrCat("consumer: ", err));
  conf.release();
  rd_kafka_poll_set_consumer(consumer.get());
  TEND_ASSIGN_OR_RETURN(auto offsets, TopicWatermarks(consumer.get(), options.topic));
  const int partitions = static_cast<int>(offsets.size());

  v1::ArchiveHeader header;
  header.set_topic(options.topic);
  header.set_partitions(partitions);
  header.mutable_created_at()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  // Partition by partition (the header says so): a replay of the file then folds one
  // partition's patients at a time (kafka/archive.h).
  header.set_partition_major(true);
  int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    const PartitionOffsets& o = offsets[static_cast<size_t>(p)];
    header.add_low_offsets(o.low);
    header.add_high_offsets(o.high);
    total += o.high - o.low;
  }
  TEND_ASSIGN_OR_RETURN(auto writer, ArchiveWriter::Create(options.out, header));
  const absl::Time start = absl::Now();
  Progress shown(progress, options.progress_bar, options.progress_every, "archive");
  absl::Time next_show = absl::Now();
  v1::ArchiveRecord record;
  for (int p = 0; p < partitions; ++p) {
    const PartitionOffsets& o = offsets[static_cast<size_t>(p)];
    if (o.high <= o.low) continue;  // nothing to read
    KafkaPartitionList assignment(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(assignment.get(), options.topic.c_str(), p)->offset = o.low;
    if (rd_kafka_resp_err_t e = rd_kafka_assign(consumer.get(), assignment.get());
        e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return FromKafka(e, absl::StrCat("assigning partition ", p));
    }
    bool closed = false;
    while (!closed) {
      if (stop.load()) {
        return absl::CancelledError(absl::StrCat("archive stopped; nothing was written to ",
                                                 options.out));
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 100);
      if (absl::Now() >= next_show) {
        shown.Show(writer->records(), total);
        next_show = absl::Now() + shown.tick();
      }
      if (m == nullptr) continue;
      std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
          m, rd_kafka_message_destroy);
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // Any partition's, or none's (-1): the export cannot vouch for the file.
        return absl::UnavailableError(absl::StrCat("reading ", options.topic, "[", m->partition,
                                                   "]: ", rd_kafka_message_errstr(m)));
      }
      if (m->partition != p) continue;  // of a partition no longer assigned
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // At the end (offsets that hold no record, e.g. transaction markers, end a partition too).
        closed = m->offset >= o.high;
        continue;
      }
      if (m->offset < o.low) {
        return absl::DataLossError(absl::StrCat("reading ", options.topic, "[", p, "]: offset ",
                                                m->offset, " is below the export's start ", o.low));
      }
      if (m->offset >= o.high) {  // appended after the export started: this partition is done
        closed = true;
        continue;
      }
      record.set_partition(m->partition);
      record.set_offset(m->offset);
      record.set_key(m->key ? static_cast<const char*>(m->key) : "", m->key ? m->key_len : 0);
      record.set_value(m->payload ? static_cast<const char*>(m->payload) : "",
                       m->payload ? m->len : 0);
      record.set_timestamp_ms(rd_kafka_message_timestamp(m, nullptr));
      TEND_RETURN_IF_ERROR(writer->Append(record));
      closed = m->offset == o.high - 1;
    }
  }
  rd_kafka_consumer_close(consumer.get());
  TEND_RETURN_IF_ERROR(writer->Finish());
  shown.Done(writer->records());
  ArchiveReport report;
  report.records = writer->records();
  report.bytes = writer->bytes();
  report.partitions = partitions;
  report.elapsed = absl::Now() - start;
  return report;
}

absl::StatusOr<SwapReport> SwapState(const std::string& live_dir, const std::string& new_dir) {
  const std::string live = fs::path(live_dir).lexically_normal().string();
  const std::string rebuilt = fs::path(new_dir).lexically_normal().string();
  std::error_code ec;
  if (!fs::exists(fs::path(rebuilt) / "CURRENT", ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--to ", rebuilt, ": no rebuilt state there (run `tend replay --to ", rebuilt,
        "` first, and let it finish)"));
  }
  if (!fs::exists(fs::path(live) / "CURRENT", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--db ", live, ": no tend state directory there to replace"));
  }
  if (fs::equivalent(live, rebuilt, ec)) {
    return absl::InvalidArgumentError("--db and --to are the same directory");
  }
  SwapReport report;
  {
    StorageOptions existing;
    existing.create_if_missing = false;
    auto old_state = Storage::Open(live, existing);
    if (!old_state.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot open ", live, " as its only writer: ", old_state.status().message(),
          ". Stop the engine that runs on it first: a swap needs it stopped"));
    }
    TEND_ASSIGN_OR_RETURN(auto new_state, Storage::Open(rebuilt, existing));
    TEND_ASSIGN_OR_RETURN(const std::optional<absl::Time> until, new_state->FoldedUntil());
    if (until.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          rebuilt, " holds the log only up to ",
          absl::FormatTime(absl::RFC3339_full, *until, absl::UTCTimeZone()),
          " (tend replay --until): a view of the past, not a state to run on. Rebuild without "
          "--until to swap"));
    }
    TEND_ASSIGN_OR_RETURN(auto old_checkpoints, (*old_state)->LoadCheckpoints());
    TEND_ASSIGN_OR_RETURN(auto new_checkpoints, new_state->LoadCheckpoints());
    if (!old_checkpoints.empty() && !new_checkpoints.empty() &&
        old_checkpoints.front().topic() != new_checkpoints.front().topic()) {
      return absl::FailedPreconditionError(absl::StrCat(
          rebuilt, " was folded from topic ", new_checkpoints.front().topic(), ", ", live,
          " from ", old_checkpoints.front().topic(), ": not a rebuild of this state"));
    }
    StateBatch batch = new_state->NewBatch();
    TEND_RETURN_IF_ERROR((*old_state)->ForEachCommand(
        [&](int32_t partition, const v1::ReminderCommand& c) {
          batch.PutCommand(partition, c);
          ++report.commands_carried;
          return absl::OkStatus();
        }));
    CommitOptions sync;
    sync.sync = true;
    TEND_RETURN_IF_ERROR(new_state->Commit(&batch, sync));
  }  // both closed before they move
  report.previous_dir = absl::StrCat(
      live, ".replaced-",
      absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone()));
  fs::rename(live, report.previous_dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("renaming ", live, " to ", report.previous_dir,
                                               ": ", ec.message(), "; nothing was swapped"));
  }
  fs::rename(rebuilt, live, ec);
  if (ec) {
    std::error_code undo;
    fs::rename(report.previous_dir, live, undo);
    return absl::UnavailableError(absl::StrCat(
        "renaming ", rebuilt, " to ", live, ": ", ec.message(),
        undo ? absl::StrCat("; the old state is in ", report.previous_dir, ", move it back")
             : "; nothing was swapped"));
  }
  return report;
}

}  // namespace tend
