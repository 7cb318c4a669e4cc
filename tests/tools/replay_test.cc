// tend replay against a live run of the same log: a real Kafka-protocol broker (librdkafka's mock
// cluster, in process), the real engine, RocksDB in temp dirs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "dev/mock_broker.h"
#include "kafka/archive.h"
#include "storage/storage.h"
#include "tests/archive_records.h"
#include "tests/testing.h"
#include "tools/commands.h"
#include "tools/replay.h"

namespace tend {
namespace {

using testing::TempDir;

std::shared_ptr<const RuleSet> DefaultRules() {
  auto rules = RuleSet::Load(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  REQUIRE(rules.ok());
  return std::make_shared<const RuleSet>(*std::move(rules));
}

std::string Dump(const std::string& db, bool raw) {
  DumpOptions options;
  options.db_dir = db;
  options.raw_state = raw;
  std::ostringstream out;
  REQUIRE(DumpPatients(options, out, std::cerr).ok());
  return out.str();
}

struct Stored {
  std::set<std::string> outbox;  // command ids
  std::string decisions;         // every patient's decisions, serialized in order
};

Stored ReadStored(const std::string& db) {
  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  Stored s;
  REQUIRE((*storage)
              ->ForEachCommand([&](int32_t, const v1::ReminderCommand& c) {
                s.outbox.insert(c.command_id());
                return absl::OkStatus();
              })
              .ok());
  std::vector<std::string> patients;
  REQUIRE((*storage)
              ->ForEachState([&](const v1::PatientState& state) {
                patients.push_back(state.patient_id());
                return absl::OkStatus();
              })
              .ok());
  for (const std::string& p : patients) {
    auto decisions = (*storage)->RecentDecisions(p, 100000);
    REQUIRE(decisions.ok());
    for (const auto& d : *decisions) s.decisions += d.SerializeAsString();
  }
  return s;
}

TEST_CASE("replay rebuilds what the live run folded and decided, into a new directory, and "
          "sends nothing",
          "[integration]") {
  const auto broker = testing::BrokerWith(testing::Cohort(200, 45, 7));

  TempDir dir;
  EngineOptions live;
  live.brokers = broker->bootstrap();
  live.exit_when_idle = true;
  live.rules = DefaultRules();
  {
    auto storage = Storage::Open(dir.Sub("live"));
    REQUIRE(storage.ok());
    auto engine = Engine::Create(live, storage->get());
    REQUIRE(engine.ok());
    std::atomic<bool> stop{false};
    REQUIRE((*engine)->Run(stop).ok());
  }

  ReplayOptions replay;
  replay.engine.brokers = broker->bootstrap();
  replay.engine.rules = DefaultRules();
  replay.to_dir = dir.Sub("rebuilt");
  replay.commands_out = dir.Sub("commands.jsonl");
  std::ostringstream progress;
  std::atomic<bool> stop{false};
  auto report = Replay(replay, stop, progress);
  REQUIRE(report.ok());
  CHECK(report->stats.records == report->records_in_log);
  CHECK(report->stats.commands > 0);
  CHECK_FALSE(std::filesystem::exists(dir.Sub("rebuilt.partial")));
  CHECK_FALSE(std::filesystem::exists(dir.Sub("commands.jsonl.partial")));

  // The same projections, views and raw states, byte for byte.
  CHECK(Dump(dir.Sub("live"), false) == Dump(dir.Sub("rebuilt"), false));
  CHECK(Dump(dir.Sub("live"), true) == Dump(dir.Sub("rebuilt"), true));
  // The same decisions; the live run's commands wait in its outbox, the replay's only in the file.
  const Stored live_stored = ReadStored(dir.Sub("live"));
  const Stored rebuilt = ReadStored(dir.Sub("rebuilt"));
  CHECK_FALSE(live_stored.decisions.empty());
  CHECK(live_stored.decisions == rebuilt.decisions);
  CHECK(rebuilt.outbox.empty());
  std::set<std::string> replayed;
  std::ifstream in(replay.commands_out);
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("\"command_id\":\"");
    REQUIRE(at != std::string::npos);
    replayed.insert(line.substr(at + 14, 32));
  }
  CHECK(static_cast<int64_t>(replayed.size()) == report->stats.commands);
  CHECK(replayed == live_stored.outbox);

  // The same from an archive of the topic, without Kafka.
  ArchiveOptions archive;
  archive.brokers = broker->bootstrap();
  archive.out = dir.Sub("events.tarc");
  auto exported = ExportArchive(archive, stop, progress);
  REQUIRE(exported.ok());
  {
    // Partition by partition (the replay below folds one partition's patients at a time, and
    // still equals the live run that read them interleaved).
    auto archived = testing::ReadArchiveRecords(archive.out);
    REQUIRE(archived.ok());
    CHECK(archived->header.partition_major());
    const std::vector<int32_t> runs = testing::PartitionRuns(archived->records);
    CHECK(runs.size() > 1);
    CHECK(std::is_sorted(runs.begin(), runs.end()));
    CHECK(std::adjacent_find(runs.begin(), runs.end()) == runs.end());
  }
  CHECK(exported->records == report->records_in_log);
  CHECK(exported->partitions == 4);
  ReplayOptions from_archive;
  from_archive.archive_path = archive.out;
  from_archive.engine.rules = DefaultRules();
  from_archive.to_dir = dir.Sub("from-archive");
  auto archived = Replay(from_archive, stop, progress);
  REQUIRE(archived.ok());
  CHECK(archived->stats.records == exported->records);
  CHECK(Dump(dir.Sub("live"), true) == Dump(dir.Sub("from-archive"), true));
  CHECK(live_stored.decisions == ReadStored(dir.Sub("from-archive")).decisions);
  CHECK(ReadStored(dir.Sub("from-archive")).outbox.empty());

  // --swap: refused while the live directory is open; then the rebuild takes the live path,
  // with the live outbox's undelivered commands carried over, and the old state kept aside.
  {
    auto held = Storage::Open(dir.Sub("live"));
    REQUIRE(held.ok());
    auto refused = SwapState(dir.Sub("live"), dir.Sub("rebuilt"));
    REQUIRE(refused.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(refused.status().message()), Catch::Contains("Stop the engine"));
  }
  CHECK(std::filesystem::exists(dir.Sub("rebuilt")));
  auto swapped = SwapState(dir.Sub("live"), dir.Sub("rebuilt"));
  REQUIRE(swapped.ok());
  CHECK(swapped->commands_carried == static_cast<int64_t>(live_stored.outbox.size()));
  CHECK_FALSE(std::filesystem::exists(dir.Sub("rebuilt")));
  CHECK(swapped->previous_dir.rfind(dir.Sub("live.replaced-"), 0) == 0);
  const Stored after = ReadStored(dir.Sub("live"));
  CHECK(after.outbox == live_stored.outbox);
  CHECK(after.decisions == live_stored.decisions);
  CHECK(ReadStored(swapped->previous_dir).outbox == live_stored.outbox);

  // A replay that stops before its end leaves its rebuild marked unfinished (written without
  // the WAL): nothing opens it as a state.
  ReplayOptions stopped = from_archive;
  stopped.to_dir = dir.Sub("stopped");
  std::atomic<bool> stop_now{true};
  auto cancelled = Replay(stopped, stop_now, progress);
  REQUIRE(cancelled.status().code() == absl::StatusCode::kCancelled);
  auto opened = Storage::Open(dir.Sub("stopped.partial"));
  REQUIRE_FALSE(opened.ok());
  CHECK_THAT(std::string(opened.status().message()), Catch::Contains("unfinished rebuild"));
}

TEST_CASE("replay --from starts each partition at its first record at or after the time, from "
          "Kafka and from an archive",
          "[integration]") {
  const std::vector<v1::Event> events = testing::Cohort(150, 40, 9);
  const auto broker = testing::BrokerWith(events);
  const absl::Time from = absl::FromUnixSeconds(events[events.size() / 2].recorded_at().seconds());
  int64_t expected = 0;
  for (const auto& e : events) expected += absl::FromUnixSeconds(e.recorded_at().seconds()) >= from;
  REQUIRE(expected > 0);
  REQUIRE(expected < static_cast<int64_t>(events.size()));

  testing::TempDir dir;
  std::ostringstream progress;
  std::atomic<bool> stop{false};
  ReplayOptions replay;
  replay.engine.brokers = broker->bootstrap();
  replay.engine.start_at = from;
  replay.to_dir = dir.Sub("from-kafka");
  auto report = Replay(replay, stop, progress);
  REQUIRE(report.ok());
  CHECK(report->stats.records == expected);

  ArchiveOptions archive;
  archive.brokers = broker->bootstrap();
  archive.out = dir.Sub("events.tarc");
  REQUIRE(ExportArchive(archive, stop, progress).ok());
  ReplayOptions from_archive;
  from_archive.archive_path = archive.out;
  from_archive.engine.start_at = from;
  from_archive.to_dir = dir.Sub("from-archive");
  auto archived = Replay(from_archive, stop, progress);
  REQUIRE(archived.ok());
  CHECK(archived->stats.records == expected);
  CHECK(Dump(dir.Sub("from-kafka"), true) == Dump(dir.Sub("from-archive"), true));
}

TEST_CASE("replay --until folds exactly the records stamped up to the time: the state as it "
          "stood then, which a live engine and a swap refuse",
          "[integration]") {
  std::vector<v1::Event> log = testing::Cohort(150, 40, 9);
  const int64_t until_ms = log[log.size() / 2].recorded_at().seconds() * 1000 + 500;
  const absl::Time until = absl::FromUnixMillis(until_ms);
  auto stamped_ms = [](const v1::Event& e) {
    return e.recorded_at().seconds() * 1000 + e.recorded_at().nanos() / 1'000'000;
  };
  // Early in the log, a record stamped far ahead (a producer's broken clock: the live engine
  // dead-lettered it); it must not end its partition's history there. And after the cut, one
  // stamped before it (an import of older records): folded like the rest of its time.
  v1::Event ahead = log[log.size() / 4];
  ahead.set_event_id(ahead.event_id() + "-ahead");
  ahead.mutable_recorded_at()->set_seconds(4'000'000'000);
  ahead.mutable_occurred_at()->set_seconds(4'000'000'000);
  log.insert(log.begin() + static_cast<std::ptrdiff_t>(log.size() / 4), ahead);
  v1::Event late = log[log.size() / 3];
  late.set_event_id(late.event_id() + "-late");
  REQUIRE(stamped_ms(late) <= until_ms);
  log.push_back(late);
  const auto broker = testing::BrokerWith(log);

  // Every record stamped up to the time, in the log's order; where each partition's log ends.
  std::vector<v1::Event> before;
  for (const v1::Event& e : log) {
    if (stamped_ms(e) <= until_ms) before.push_back(e);
  }
  const int64_t past = static_cast<int64_t>(log.size() - before.size());
  REQUIRE(past > 100);
  std::map<int32_t, int64_t> end_of;  // partition -> its next offset
  for (const testing::TopicRecord& r :
       testing::ReadTopic(broker->bootstrap(), MockBrokerOptions().topic)) {
    end_of[r.partition] = std::max(end_of[r.partition], r.offset + 1);
  }

  testing::TempDir dir;
  std::ostringstream progress;
  std::atomic<bool> stop{false};
  ReplayOptions replay;
  replay.engine.brokers = broker->bootstrap();
  replay.engine.end_at = until;
  replay.to_dir = dir.Sub("until");
  auto report = Replay(replay, stop, progress);
  INFO(report.status());
  REQUIRE(report.ok());
  CHECK(report->stats.records == static_cast<int64_t>(before.size()));
  CHECK(report->stats.records_past_end == past);
  CHECK(report->stats.dead_lettered == 0);  // the record far ahead was passed over, unread
  const std::vector<v1::PartitionCheckpoint> checkpoints =
      testing::ReadCheckpoints(dir.Sub("until"));
  REQUIRE(checkpoints.size() == 4);
  for (const v1::PartitionCheckpoint& cp : checkpoints) {
    CHECK(cp.next_offset() == end_of.at(cp.partition()));  // read to the end, as --from does
    CHECK(cp.clock().seconds() * 1000 <= until_ms);  // this producer stamps recorded_at
  }

  // The same states as a log of just those records, and the same from an archive of the log.
  const auto shorter = testing::BrokerWith(before);
  ReplayOptions whole;
  whole.engine.brokers = shorter->bootstrap();
  whole.to_dir = dir.Sub("shorter");
  REQUIRE(Replay(whole, stop, progress).ok());
  const std::string want = Dump(dir.Sub("shorter"), true);
  CHECK(Dump(dir.Sub("until"), true) == want);
  ArchiveOptions archive;
  archive.brokers = broker->bootstrap();
  archive.out = dir.Sub("events.tarc");
  REQUIRE(ExportArchive(archive, stop, progress).ok());
  ReplayOptions from_archive;
  from_archive.archive_path = archive.out;
  from_archive.engine.end_at = until;
  from_archive.to_dir = dir.Sub("until-archive");
  REQUIRE(Replay(from_archive, stop, progress).ok());
  CHECK(Dump(dir.Sub("until-archive"), true) == want);

  // A view of the past: a live engine refuses to run on it, a swap to install it, and a replay
  // into it must end at the same time.
  {
    auto storage = Storage::Open(dir.Sub("until"));
    REQUIRE(storage.ok());
    auto folded_until = (*storage)->FoldedUntil();
    REQUIRE(folded_until.ok());
    CHECK(*folded_until == std::optional<absl::Time>(until));
    EngineOptions live;
    live.brokers = broker->bootstrap();
    auto engine = Engine::Create(live, storage->get());
    CHECK(engine.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(engine.status().message()), Catch::Contains("tend replay --until"));
    live.end_at = until;  // and an end time is for replays alone
    CHECK(Engine::Create(live, storage->get()).status().code() ==
          absl::StatusCode::kInvalidArgument);
    EngineOptions again;
    again.mode = EngineOptions::Mode::kReplay;
    again.end_at = until + absl::Hours(1);
    CHECK(Engine::Create(again, storage->get()).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    again.end_at = until + absl::Milliseconds(1);  // one millisecond folds other records
    CHECK(Engine::Create(again, storage->get()).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    again.end_at.reset();  // nor on to the log's end
    CHECK(Engine::Create(again, storage->get()).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    // Both refusals left the mark as it was.
    CHECK(*(*storage)->FoldedUntil() == std::optional<absl::Time>(until));
  }
  auto swapped = SwapState(dir.Sub("shorter"), dir.Sub("until"));
  CHECK(swapped.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(swapped.status().message()), Catch::Contains("--until"));
  CHECK(std::filesystem::exists(dir.Sub("shorter")));
  // A rebuild of the whole log is not marked.
  auto storage = Storage::Open(dir.Sub("shorter"));
  REQUIRE(storage.ok());
  CHECK(!(*storage)->FoldedUntil()->has_value());
}

// The commands of a --commands-out file, sorted (several fold threads interleave partitions).
std::vector<std::string> SortedLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_CASE("a replay on several fold threads builds the state, checkpoints, decisions and commands "
          "one thread does, from an archive partition by partition or interleaved",
          "[integration]") {
  const auto broker = testing::BrokerWith(testing::Cohort(150, 40, 9));
  TempDir dir;
  std::ostringstream progress;
  std::atomic<bool> stop{false};
  ArchiveOptions archive;
  archive.brokers = broker->bootstrap();
  archive.out = dir.Sub("events.tarc");
  REQUIRE(ExportArchive(archive, stop, progress).ok());
  // The same records with the partitions taken in turn: an archive that interleaves them.
  auto contents = testing::ReadArchiveRecords(archive.out);
  REQUIRE(contents.ok());
  REQUIRE(contents->header.partitions() == 4);
  {
    v1::ArchiveHeader header = contents->header;
    header.set_partition_major(false);
    auto writer = ArchiveWriter::Create(dir.Sub("interleaved.tarc"), header);
    REQUIRE(writer.ok());
    std::map<int32_t, std::vector<const v1::ArchiveRecord*>> by_partition;
    for (const v1::ArchiveRecord& r : contents->records) by_partition[r.partition()].push_back(&r);
    for (size_t i = 0; i < contents->records.size(); ++i) {
      for (const auto& [partition, records] : by_partition) {
        if (i < records.size()) REQUIRE((*writer)->Append(*records[i]).ok());
      }
    }
    REQUIRE((*writer)->Finish().ok());
  }

  auto replay = [&](const std::string& from, int threads, const std::string& to) {
    ReplayOptions options;
    options.archive_path = from;
    options.engine.rules = DefaultRules();
    options.fold_threads = threads;
    options.to_dir = dir.Sub(to);
    options.commands_out = dir.Sub(to + ".jsonl");
    auto report = Replay(options, stop, progress);
    INFO(report.status());
    REQUIRE(report.ok());
    return *report;
  };
  const ReplayReport one = replay(archive.out, 1, "one");
  REQUIRE(one.stats.commands > 0);
  const std::string want = Dump(dir.Sub("one"), true);
  const Stored want_stored = ReadStored(dir.Sub("one"));
  const std::vector<v1::PartitionCheckpoint> want_checkpoints =
      testing::ReadCheckpoints(dir.Sub("one"));
  REQUIRE(want_checkpoints.size() == 4);
  // 3 threads: partitions {0}, {1}, {2, 3}. 64: one per partition (no more than there are).
  for (const auto& [from, threads] : std::vector<std::pair<std::string, int>>{
           {archive.out, 2}, {archive.out, 3}, {archive.out, 64},
           {dir.Sub("interleaved.tarc"), 3}}) {
    const std::string to = absl::StrCat(threads, "-", std::filesystem::path(from).stem().string());
    INFO(to);
    const ReplayReport many = replay(from, threads, to);
    CHECK(many.stats.records == one.stats.records);
    CHECK(many.stats.events_applied == one.stats.events_applied);
    CHECK(many.stats.timers_fired == one.stats.timers_fired);
    CHECK(many.stats.decisions == one.stats.decisions);
    CHECK(many.stats.commands == one.stats.commands);
    CHECK(many.stats.partitions_assigned == 4);  // each partition folded by one engine
    // Every engine folded its range and committed it (one engine folding all would not).
    CHECK(many.stats.commits >= std::min(threads, 4));
    CHECK(Dump(dir.Sub(to), true) == want);
    const Stored stored = ReadStored(dir.Sub(to));
    CHECK(stored.decisions == want_stored.decisions);
    const std::vector<v1::PartitionCheckpoint> checkpoints = testing::ReadCheckpoints(dir.Sub(to));
    REQUIRE(checkpoints.size() == want_checkpoints.size());
    for (size_t i = 0; i < checkpoints.size(); ++i) {
      v1::PartitionCheckpoint got = checkpoints[i];
      got.clear_committed_at();  // the wall clock's, for operators
      v1::PartitionCheckpoint wanted = want_checkpoints[i];
      wanted.clear_committed_at();
      CHECK(got.SerializeAsString() == wanted.SerializeAsString());
    }
    CHECK(SortedLines(dir.Sub(to + ".jsonl")) == SortedLines(dir.Sub("one.jsonl")));
  }

  // An end time finer than the milliseconds the directory's mark keeps: the engines after the
  // first, which find the mark, agree with it, and fold what one engine does.
  const absl::Time until =
      absl::FromUnixMillis(contents->records[contents->records.size() / 2].timestamp_ms()) +
      absl::Microseconds(456);
  auto replay_until = [&](int threads, const std::string& to) {
    ReplayOptions options;
    options.archive_path = archive.out;
    options.engine.rules = DefaultRules();
    options.engine.end_at = until;
    options.fold_threads = threads;
    options.to_dir = dir.Sub(to);
    auto report = Replay(options, stop, progress);
    INFO(report.status());
    REQUIRE(report.ok());
    CHECK(report->stats.records_past_end > 0);
  };
  replay_until(1, "until-1");
  replay_until(3, "until-3");
  CHECK(Dump(dir.Sub("until-3"), true) == Dump(dir.Sub("until-1"), true));

  // A damaged frame in the last range: that range's engine fails, the replay fails with it (the
  // others stopped or done), and no state directory is left as if complete.
  {
    std::string bytes = testing::ReadFile(archive.out);
    REQUIRE(bytes.size() > 4000);
    bytes[bytes.size() - 2000] ^= 0x5a;
    std::ofstream(dir.Sub("damaged.tarc"), std::ios::binary) << bytes;
    ReplayOptions options;
    options.archive_path = dir.Sub("damaged.tarc");
    options.fold_threads = 2;
    options.to_dir = dir.Sub("damaged");
    auto damaged = Replay(options, stop, progress);
    CHECK(damaged.status().code() == absl::StatusCode::kDataLoss);
    CHECK_THAT(std::string(damaged.status().message()), Catch::Contains("rm -r"));
    CHECK(!std::filesystem::exists(dir.Sub("damaged")));
  }

  // From Kafka a replay folds on one thread: more is refused, before anything is read.
  ReplayOptions kafka;
  kafka.engine.brokers = broker->bootstrap();
  kafka.fold_threads = 2;
  kafka.to_dir = dir.Sub("kafka");
  auto refused = Replay(kafka, stop, progress);
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("--archive"));
  CHECK(!std::filesystem::exists(dir.Sub("kafka.partial")));
}

TEST_CASE("replay refuses a directory that is not new, before reading the log") {
  TempDir dir;
  std::filesystem::create_directory(dir.Sub("live"));
  std::ofstream(dir.Sub("live/CURRENT")) << "a live state directory";
  ReplayOptions replay;
  replay.engine.brokers = "127.0.0.1:1";  // never contacted: the directory is checked first
  std::atomic<bool> stop{false};
  std::ostringstream progress;

  replay.to_dir = dir.Sub("live");
  auto refused = Replay(replay, stop, progress);
  REQUIRE(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("exists and is not empty"));
  CHECK(std::filesystem::exists(dir.Sub("live/CURRENT")));

  std::filesystem::create_directory(dir.Sub("next.partial"));
  replay.to_dir = dir.Sub("next");
  refused = Replay(replay, stop, progress);
  REQUIRE(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("did not finish"));
}

// The commits a replay reported: "..., N commits, ..." in the binary's last line.
int64_t CommitsIn(const std::string& log) {
  const size_t end = log.find(" commits,");
  REQUIRE(end != std::string::npos);
  const size_t start = log.rfind(' ', end - 1) + 1;
  return std::stoll(log.substr(start, end - start));
}

TEST_CASE("tend replay --commit-max-records and --commit-interval-ms set when a replay commits, "
          "a cadence in records alone the same from run to run") {
  TempDir dir;
  const std::string archive = dir.Sub("cohort.tarc");
  REQUIRE(testing::ExitCode(testing::SpawnTend({"simulate", "--archive", archive, "--patients",
                                                "100", "--days", "20", "--partitions", "4"},
                                               dir.Sub("simulate.log"))) == 0);
  auto replay = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {"replay", "--archive", archive, "--to", dir.Sub(name)};
    args.insert(args.end(), extra.begin(), extra.end());
    const int code = testing::ExitCode(testing::SpawnTend(args, dir.Sub(name + ".log")));
    return std::make_pair(code, testing::ReadFile(dir.Sub(name + ".log")));
  };
  // Every record in one commit by default (2 s, 500,000 records); one commit per 200 records
  // (and the end's) with the interval out of the way, twice alike.
  auto [code, log] = replay("default", {});
  REQUIRE(code == 0);
  const int64_t by_default = CommitsIn(log);
  const std::vector<std::string> by_records = {"--commit-max-records", "200",
                                               "--commit-interval-ms", "3600000"};
  auto [code_a, log_a] = replay("a", by_records);
  auto [code_b, log_b] = replay("b", by_records);
  REQUIRE(code_a == 0);
  REQUIRE(code_b == 0);
  CHECK(CommitsIn(log_a) > by_default + 5);
  CHECK(CommitsIn(log_a) == CommitsIn(log_b));
  // An interval of 1 ms: a commit between the batches read (the fold takes milliseconds).
  auto [code_t, log_t] = replay("t", {"--commit-interval-ms", "1"});
  REQUIRE(code_t == 0);
  CHECK(CommitsIn(log_t) > by_default);
  // The same state whatever the cadence.
  CHECK(Dump(dir.Sub("default"), true) == Dump(dir.Sub("a"), true));
  // Out of range: refused before anything is read.
  auto [refused, why] = replay("refused", {"--commit-interval-ms", "3600001"});
  CHECK(refused != 0);
  CHECK_THAT(why, Catch::Contains("--commit-interval-ms"));
  CHECK_FALSE(std::filesystem::exists(dir.Sub("refused")));
}

TEST_CASE("the replay progress bar shows share, counts, rate and time left") {
  CHECK(FormatProgressBar(482113, 1000000, 85100, 10) ==
        "[====>     ]  48.2%  482,113/1,000,000 records  85.1k/s  ETA 6s");
  CHECK(FormatProgressBar(1000000, 1000000, 2.5e6, 4) ==
        "[====] 100.0%  1,000,000/1,000,000 records  2.50M/s  ETA -");
  CHECK(FormatProgressBar(0, 0, 0, 3) == "[===] 100.0%  0/0 records  0/s  ETA -");
}

}  // namespace
}  // namespace tend
