// SIGKILL the engine (a real child process) at several points while it folds; after a final
// restart, every patient's state must equal the ground truth: nothing lost, nothing counted twice.
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "dev/mock_broker.h"
#include "storage/storage.h"
#include "tests/testing.h"
#include "tools/commands.h"

namespace tend {
namespace {

using testing::TempDir;

pid_t StartEngine(const std::string& brokers, const std::string& db, const std::string& group,
                  bool exit_when_idle, const std::string& log_path) {
  std::vector<std::string> args = {"engine", "--brokers", brokers, "--db", db,
                                   "--group", group, "--commit-max-records", "250",
                                   "--commit-interval-ms", "20",
                                   // Small fetches (with the broker's injected RTT) spread the
                                   // fold over seconds, so kills land mid-way.
                                   "--kafka", "max.partition.fetch.bytes=2048"};
  if (exit_when_idle) args.push_back("--exit-when-idle");
  return testing::SpawnTend(args, log_path);
}

int64_t CommittedRecords(const std::string& db) {
  int64_t n = 0;
  for (const auto& cp : testing::ReadCheckpoints(db)) n += cp.next_offset();
  return n;
}

TEST_CASE("SIGKILL at any point loses nothing and counts nothing twice", "[integration]") {
  auto broker = testing::StartBroker(8);
  const std::string brokers = broker->bootstrap();
  // Small producer batches: a fetch returns at least one whole batch.
  auto producer = Producer::Create({{"bootstrap.servers", brokers}, {"batch.num.messages", "20"}});
  REQUIRE(producer.ok());
  std::vector<v1::Event> events = testing::Cohort(600, 60, 17);
  REQUIRE(events.size() > 25000);
  testing::ProduceAll(producer->get(), MockBrokerOptions().topic, events);
  const int64_t total = static_cast<int64_t>(events.size());
  // Every broker response now takes 5 ms more (the mock cluster's fault injection).
  REQUIRE(rd_kafka_mock_broker_set_rtt(broker->cluster(), -1, 5) == RD_KAFKA_RESP_ERR_NO_ERROR);

  TempDir dir;
  const std::string db = dir.Sub("state");
  const std::string log = dir.Sub("engine.log");
  std::mt19937 rng(1234);
  int kills_mid_way = 0;
  int64_t last = 0;
  for (int round = 0; round < 6 && last < total; ++round) {
    // A new group each round: the killed member would otherwise hold its partitions until its
    // session times out. Offsets come from the state directory, never from the group.
    pid_t pid = StartEngine(brokers, db, absl::StrCat("crash-", round), false, log);
    // Wait until this run has committed progress, then kill it at a random moment soon after.
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (CommittedRecords(db) <= last && absl::Now() < deadline) {
      usleep(5000);
    }
    usleep(std::uniform_int_distribution<int>(0, 40'000)(rng));
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    int64_t now = CommittedRecords(db);
    INFO("round " << round << ": committed " << now << " of " << total);
    CHECK(now >= last);  // committed progress never goes back
    if (now > 0 && now < total) ++kills_mid_way;
    last = now;
  }
  CHECK(kills_mid_way >= 2);

  pid_t pid = StartEngine(brokers, db, "crash-final", true, log);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  CHECK(CommittedRecords(db) == total);
  testing::RequireMatchesGroundTruth(testing::ReadStates(db), testing::GroundTruth(events));
  int64_t applied = 0, dropped = 0;
  for (const auto& cp : testing::ReadCheckpoints(db)) {
    applied += cp.events_applied();
    dropped += cp.duplicates_dropped();
  }
  CHECK(dropped == testing::CountDuplicates(events));
  CHECK(applied == total - dropped);
}

}  // namespace
}  // namespace tend

namespace tend {
namespace {

// Runs `command`, returning its exit status and standard output.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST_CASE("SIGTERM commits what was folded and exits 0 - dump reads beside a live engine",
          "[integration]") {
  auto broker = testing::StartBroker(4);
  auto producer = Producer::Create(
      {{"bootstrap.servers", broker->bootstrap()}, {"batch.num.messages", "20"}});
  REQUIRE(producer.ok());
  std::vector<v1::Event> events = testing::Cohort(300, 60, 23);
  testing::ProduceAll(producer->get(), MockBrokerOptions().topic, events);
  REQUIRE(rd_kafka_mock_broker_set_rtt(broker->cluster(), -1, 5) == RD_KAFKA_RESP_ERR_NO_ERROR);

  TempDir dir;
  const std::string db = dir.Sub("state");
  pid_t pid = StartEngine(broker->bootstrap(), db, "sigterm", false, dir.Sub("engine.log"));
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (CommittedRecords(db) == 0 && absl::Now() < deadline) usleep(5000);
  REQUIRE(CommittedRecords(db) > 0);

  // `tend dump` beside the live engine: a consistent view, every line a patient.
  auto [dump_status, dump] = RunCommand(absl::StrCat(TEND_BINARY, " dump --db ", db, " 2>/dev/null"));
  CHECK(dump_status == 0);
  CHECK(dump.find("{\"patient_id\":\"p") == 0);

  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  // What was committed is self-consistent: every record below the stored offsets is accounted
  // for, and the states hold exactly the events the checkpoints say were applied.
  int64_t next = 0, applied = 0, dropped = 0, dead = 0;
  for (const auto& cp : testing::ReadCheckpoints(db)) {
    next += cp.next_offset();
    applied += cp.events_applied();
    dropped += cp.duplicates_dropped();
    dead += cp.dead_lettered();
  }
  CHECK(next == applied + dropped + dead);
  // Everything this run consumed was committed on the way out: the engine's last log line says
  // how many records it consumed, and it started from nothing.
  std::ifstream log(dir.Sub("engine.log"));
  std::string line, stopped;
  while (std::getline(log, line)) {
    if (line.find("engine stopped: ") != std::string::npos) stopped = line;
  }
  INFO(stopped);
  REQUIRE(!stopped.empty());
  int64_t consumed = std::stoll(stopped.substr(stopped.find("engine stopped: ") + 16));
  CHECK(consumed > 0);
  CHECK(next == consumed);
  int64_t in_states = 0;
  for (const auto& [id, s] : testing::ReadStates(db)) in_states += s.unique_events();
  CHECK(in_states == applied);
}

// Everything a state directory decided, as comparable text: patient states, outbox, decisions,
// timers and the checkpoints' counters (not their commit times).
struct Decided {
  std::map<std::string, std::string> states;     // patient -> serialized state
  std::vector<std::string> outbox;               // "partition:" + serialized command, in order
  std::map<std::string, std::vector<std::string>> decisions;  // patient -> serialized, newest first
  std::vector<std::string> timers;               // "partition due patient rule"
  std::vector<std::string> checkpoints;          // per partition: offset, counters, clock
};

Decided ReadDecided(const std::string& db) {
  TempDir scratch;
  auto reader = Storage::OpenReader(db, scratch.path());
  REQUIRE(reader.ok());
  Decided d;
  REQUIRE((*reader)->ForEachState([&](const v1::PatientState& s) {
    d.states[s.patient_id()] = s.SerializeAsString();
    return absl::OkStatus();
  }).ok());
  REQUIRE((*reader)->ForEachCommand([&](int32_t partition, const v1::ReminderCommand& c) {
    d.outbox.push_back(absl::StrCat(partition, ":", c.SerializeAsString()));
    return absl::OkStatus();
  }).ok());
  for (const auto& [patient, state] : d.states) {
    auto decisions = (*reader)->RecentDecisions(patient, 1 << 20);
    REQUIRE(decisions.ok());
    for (const auto& decision : *decisions) {
      d.decisions[patient].push_back(decision.SerializeAsString());
    }
  }
  auto checkpoints = (*reader)->LoadCheckpoints();
  REQUIRE(checkpoints.ok());
  for (const auto& cp : *checkpoints) {
    d.checkpoints.push_back(absl::StrCat(cp.partition(), " next ", cp.next_offset(), " applied ",
                                         cp.events_applied(), " dropped ",
                                         cp.duplicates_dropped(), " dead ", cp.dead_lettered(),
                                         " clock ", cp.clock().seconds()));
    REQUIRE((*reader)->ForEachTimer(cp.partition(), [&](int64_t due, absl::string_view patient,
                                                         absl::string_view rule) {
      d.timers.push_back(absl::StrCat(cp.partition(), " ", due, " ", patient, " ", rule));
      return absl::OkStatus();
    }).ok());
  }
  return d;
}

// The dead letters of a broker's DLQ topic by source coordinates: (partition, offset) -> what
// the reason names (its text up to the first ':'; the rest may quote the record's Kafka
// timestamp, which differs between brokers). `copies` counts the records (at-least-once: a
// crash may send one again).
std::map<std::pair<std::string, std::string>, std::string> DeadLetters(const std::string& brokers,
                                                                       int64_t* copies) {
  std::map<std::pair<std::string, std::string>, std::string> out;
  *copies = 0;
  for (const auto& r : testing::ReadTopic(brokers, MockBrokerOptions().dlq_topic)) {
    ++*copies;
    const std::string& reason = r.headers.at("dlq.reason");
    out[{r.headers.at("dlq.source.partition"), r.headers.at("dlq.source.offset")}] =
        reason.substr(0, reason.find(':'));
  }
  return out;
}

TEST_CASE("SIGKILL mid-fold with the default rule pack and bad records: state, outbox, decisions, "
          "timers and dead letters equal a clean run's",
          "[integration]") {
  // The same log on two brokers: one for a clean run, one for the run that is killed.
  std::vector<v1::Event> events = testing::Cohort(400, 45, 31);
  std::vector<std::pair<std::string, std::string>> bad;  // key, value
  {
    v1::Event wrong_key = events[events.size() / 3];
    wrong_key.set_event_id("wrong-key");
    bad.push_back({"someone-else", wrong_key.SerializeAsString()});
    bad.push_back({events[events.size() / 2].patient_id(), "\x08\x96\x01garbage\xff"});
    v1::Event from_2099 = events[2 * events.size() / 3];
    from_2099.set_event_id("from-2099");
    from_2099.mutable_recorded_at()->set_seconds(4070908800);
    *from_2099.mutable_occurred_at() = from_2099.recorded_at();
    bad.push_back({from_2099.patient_id(), from_2099.SerializeAsString()});
  }
  auto fill = [&](MockBroker* broker) {
    auto producer = Producer::Create(
        {{"bootstrap.servers", broker->bootstrap()}, {"batch.num.messages", "20"}});
    REQUIRE(producer.ok());
    const size_t third = events.size() / 3;
    for (size_t i = 0; i < 3; ++i) {
      const std::vector<v1::Event> slice(events.begin() + i * third,
                                         i == 2 ? events.end() : events.begin() + (i + 1) * third);
      testing::ProduceAll(producer->get(), MockBrokerOptions().topic, slice);
      REQUIRE((*producer)->Produce(MockBrokerOptions().topic, RD_KAFKA_PARTITION_UA, bad[i].first,
                                   bad[i].second, {}, nullptr).ok());
      REQUIRE((*producer)->Flush(absl::Seconds(30)).ok());
    }
  };
  auto clean_broker = testing::StartBroker(4);
  auto crash_broker = testing::StartBroker(4);
  fill(clean_broker.get());
  fill(crash_broker.get());
  REQUIRE(rd_kafka_mock_broker_set_rtt(crash_broker->cluster(), -1, 5) ==
          RD_KAFKA_RESP_ERR_NO_ERROR);

  TempDir dir;
  const std::string rules = std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml";
  auto engine = [&](const std::string& brokers, const std::string& db, const std::string& group,
                    bool small_commits, bool exit_when_idle) {
    std::vector<std::string> args = {"engine", "--brokers", brokers, "--db", db, "--group",
                                     group, "--rules", rules, "--tick-interval-s", "0"};
    if (small_commits) {
      for (const char* a : {"--commit-max-records", "97", "--commit-interval-ms", "10", "--kafka",
                            "max.partition.fetch.bytes=2048"}) {
        args.push_back(a);
      }
    }
    if (exit_when_idle) args.push_back("--exit-when-idle");
    return testing::SpawnTend(args, dir.Sub("engine.log"));
  };
  auto finish = [](pid_t pid) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  };

  // The clean run: one process, large commits.
  const std::string clean_db = dir.Sub("clean");
  finish(engine(clean_broker->bootstrap(), clean_db, "clean", false, true));

  // The killed run: small commits, SIGKILLed at random moments, then run to the end.
  const std::string db = dir.Sub("crashed");
  std::mt19937 rng(77);
  int kills_mid_way = 0;
  int64_t last = 0;
  const int64_t total = static_cast<int64_t>(events.size() + bad.size());
  for (int round = 0; round < 5 && last < total; ++round) {
    pid_t pid = engine(crash_broker->bootstrap(), db, absl::StrCat("crash-", round), true, false);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (CommittedRecords(db) <= last && absl::Now() < deadline) usleep(5000);
    usleep(std::uniform_int_distribution<int>(0, 60'000)(rng));
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    const int64_t now = CommittedRecords(db);
    if (now > 0 && now < total) ++kills_mid_way;
    last = now;
  }
  CHECK(kills_mid_way >= 2);
  finish(engine(crash_broker->bootstrap(), db, "crash-final", true, true));

  const Decided clean = ReadDecided(clean_db);
  const Decided crashed = ReadDecided(db);
  // The pack decided something worth comparing.
  REQUIRE(clean.outbox.size() > 100);
  REQUIRE(clean.timers.size() > 100);
  size_t decisions = 0;
  for (const auto& [patient, list] : clean.decisions) decisions += list.size();
  REQUIRE(decisions > clean.outbox.size());
  CHECK(crashed.checkpoints == clean.checkpoints);
  CHECK(crashed.states.size() == clean.states.size());
  int differing = 0;
  for (const auto& [patient, state] : clean.states) {
    auto it = crashed.states.find(patient);
    if (it == crashed.states.end() || it->second != state) ++differing;
  }
  CHECK(differing == 0);
  CHECK(crashed.outbox == clean.outbox);
  CHECK(crashed.decisions == clean.decisions);
  CHECK(crashed.timers == clean.timers);
  // Dead letters: the same records, for the same reasons; the killed run may have sent some
  // twice (the DLQ is at-least-once), never lost one.
  int64_t clean_copies = 0, crashed_copies = 0;
  const auto clean_dlq = DeadLetters(clean_broker->bootstrap(), &clean_copies);
  const auto crashed_dlq = DeadLetters(crash_broker->bootstrap(), &crashed_copies);
  CHECK(clean_dlq.size() == bad.size());
  CHECK(clean_copies == static_cast<int64_t>(bad.size()));
  CHECK(crashed_dlq == clean_dlq);
  CHECK(crashed_copies >= static_cast<int64_t>(bad.size()));
}

// A tmpfs of `size` at `path`, unmounted when it goes. Needs root (CAP_SYS_ADMIN).
class SmallDisk {
 public:
  explicit SmallDisk(std::string path) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
  }
  ~SmallDisk() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  // errno's text on failure, empty on success.
  std::string Mount(const std::string& size) {
    const std::string data = "size=" + size;
    const unsigned long flags = mounted_ ? MS_REMOUNT : 0;
    if (mount("tmpfs", path_.c_str(), "tmpfs", flags, data.c_str()) != 0) return strerror(errno);
    mounted_ = true;
    return "";
  }

 private:
  const std::string path_;
  bool mounted_ = false;
};

TEST_CASE("a full disk stops the engine with 'no space left on device', and with room it goes "
          "on, exactly once",
          "[integration]") {
  if (geteuid() != 0) {
    WARN("skipped: mounting a small tmpfs needs root");
    return;
  }
  TempDir dir;
  SmallDisk disk(dir.Sub("disk"));
  if (const std::string error = disk.Mount("6m"); !error.empty()) {
    WARN("skipped: cannot mount a tmpfs (" << error << ")");
    return;
  }
  auto broker = testing::StartBroker(4);
  auto producer = Producer::Create(
      {{"bootstrap.servers", broker->bootstrap()}, {"batch.num.messages", "200"}});
  REQUIRE(producer.ok());
  std::vector<v1::Event> events = testing::Cohort(600, 60, 29);
  testing::ProduceAll(producer->get(), MockBrokerOptions().topic, events);
  const int64_t total = static_cast<int64_t>(events.size());

  const std::string db = dir.Sub("disk") + "/state";
  const std::string log = dir.Sub("engine.log");
  pid_t pid = StartEngine(broker->bootstrap(), db, "full", true, log);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  const std::string said = testing::ReadFile(log);
  INFO(said);
  REQUIRE(WIFEXITED(status));  // not an abort (RocksDB's assertions are on in Debian's build)
  CHECK(WEXITSTATUS(status) != 0);
  CHECK_THAT(said, Catch::Contains("no space left on device"));
  const int64_t committed = CommittedRecords(db);
  CHECK(committed > 0);  // the disk filled mid-fold, not before the engine could start
  CHECK(committed < total);

  // Room again: the same directory opens, and the fold finishes with every event exactly once.
  REQUIRE(disk.Mount("512m").empty());
  pid = StartEngine(broker->bootstrap(), db, "full-again", true, log);
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(CommittedRecords(db) == total);
  testing::RequireMatchesGroundTruth(testing::ReadStates(db), testing::GroundTruth(events));
  int64_t dropped = 0;
  for (const auto& cp : testing::ReadCheckpoints(db)) dropped += cp.duplicates_dropped();
  CHECK(dropped == testing::CountDuplicates(events));
}

}  // namespace
}  // namespace tend
