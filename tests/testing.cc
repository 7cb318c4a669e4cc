#include "tests/testing.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>


#include <catch2/catch.hpp>
#include <atomic>
#include <fstream>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "events/codec.h"
#include "dev/mock_broker.h"
#include "kafka/consumer.h"
#include "kafka/ticker.h"
#include "storage/changelog.h"
#include "storage/format.h"
#include "storage/storage.h"
#include "tools/commands.h"

namespace tend::testing {

std::map<std::string, Expected> GroundTruth(const std::vector<v1::Event>& events) {
  std::map<std::string, Expected> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& e : events) {
    if (!seen.insert({e.patient_id(), e.event_id()}).second) continue;
    Expected& x = out[e.patient_id()];
    x.unique_events++;
    x.by_type[std::string(EventTypeName(e))]++;
    x.first_seen_s = std::min<int64_t>(x.first_seen_s, e.occurred_at().seconds());
    x.last_event_s = std::max<int64_t>(x.last_event_s, e.occurred_at().seconds());
  }
  return out;
}

std::vector<v1::Event> RecentScans(int patients) {
  std::vector<v1::Event> scans;
  const int64_t minute_ago = absl::ToUnixSeconds(absl::Now()) - 60;
  for (int i = 0; i < patients; ++i) {
    v1::Event& e = scans.emplace_back();
    e.set_patient_id(absl::StrCat("p", i));
    e.set_event_id(absl::StrCat("scan-", i));
    e.mutable_occurred_at()->set_seconds(minute_ago);
    e.mutable_recorded_at()->set_seconds(minute_ago);
    e.mutable_scan()->set_channel_id("pharmacy");
  }
  return scans;
}

void ProduceChangelogState(Producer* producer, const std::string& topic, int32_t partition,
                           const v1::PatientState& state, uint64_t commit, char tag) {
  std::string id;
  storage_format::AppendBe64(commit, &id);
  const KafkaHeader header{changelog::kCommitHeader, id};
  ProduceChangelogState(producer, topic, partition, state, tag,
                        std::span<const KafkaHeader>(&header, 1));
}

void ProduceChangelogState(Producer* producer, const std::string& topic, int32_t partition,
                           const v1::PatientState& state, char tag,
                           std::span<const KafkaHeader> headers) {
  std::string key, value;
  StateBatch::EncodePatient(partition, state, {1}, &key, &value);
  const std::string record_key = changelog::kState + key;
  const std::string record_value = tag + value;
  REQUIRE(producer->Produce(topic, partition, record_key, record_value, headers, nullptr).ok());
  REQUIRE(producer->Flush(absl::Seconds(10)).ok());
}

void ProduceDamagedChangelogRecord(Producer* producer, const std::string& topic,
                                   int32_t partition) {
  v1::PatientState state;
  state.set_patient_id("forged");
  state.set_partition(partition);
  // A tag past every changelog format version.
  ProduceChangelogState(producer, topic, partition, state, 0xbad0'0000'0000'0001, '\x7f');
}

void ProduceAll(Producer* producer, const std::string& topic,
                const std::vector<v1::Event>& events) {
  for (const auto& e : events) REQUIRE(ProduceEvent(producer, topic, e).ok());
  REQUIRE(producer->Flush(absl::Seconds(60)).ok());
  REQUIRE(producer->failed() == 0);
}

namespace {
std::unique_ptr<Storage> OpenReaderOrNull(const std::string& db_dir, const TempDir& scratch) {
  auto s = Storage::OpenReader(db_dir, scratch.path());
  // Not there yet, or being created by the engine right now.
  if (absl::IsNotFound(s.status()) || absl::IsUnavailable(s.status())) return nullptr;
  REQUIRE(s.status().ToString() == "OK");
  return std::move(*s);
}
}  // namespace

std::map<std::string, v1::PatientState> ReadStates(const std::string& db_dir) {
  TempDir scratch;
  std::map<std::string, v1::PatientState> out;
  auto storage = OpenReaderOrNull(db_dir, scratch);
  if (!storage) return out;
  REQUIRE(storage
              ->ForEachState([&](const v1::PatientState& s) {
                out[s.patient_id()] = s;
                return absl::OkStatus();
              })
              .ok());
  return out;
}

void CopyPatients(const std::string& db_dir, int copies) {
  const std::map<std::string, v1::PatientState> originals = ReadStates(db_dir);
  REQUIRE(!originals.empty());
  auto storage = Storage::Open(db_dir);
  REQUIRE(storage.ok());
  StateBatch batch = (*storage)->NewBatch();
  for (int k = 1; k <= copies; ++k) {
    for (const auto& [id, state] : originals) {
      v1::PatientState copy = state;
      copy.set_patient_id(absl::StrCat(id, "~", k));
      batch.PutPatient(copy.partition(), copy, {});
    }
    if (batch.Count() > 50'000 || k == copies) {
      REQUIRE((*storage)->Commit(&batch).ok());
      batch.Clear();
    }
  }
}

std::vector<v1::PartitionCheckpoint> ReadCheckpoints(const std::string& db_dir) {
  TempDir scratch;
  auto storage = OpenReaderOrNull(db_dir, scratch);
  if (!storage) return {};
  auto cps = storage->LoadCheckpoints();
  REQUIRE(cps.ok());
  return *cps;
}

void RequireMatchesGroundTruth(const std::map<std::string, v1::PatientState>& states,
                               const std::map<std::string, Expected>& expected) {
  REQUIRE(states.size() == expected.size());
  for (const auto& [patient, x] : expected) {
    INFO("patient " << patient);
    auto it = states.find(patient);
    REQUIRE(it != states.end());
    const v1::PatientState& s = it->second;
    CHECK(s.unique_events() == x.unique_events);
    CHECK(s.first_seen_at().seconds() == x.first_seen_s);
    CHECK(s.last_event_at().seconds() == x.last_event_s);
    // Field names of EventCounts are the EventTypeName() values; zero counts are absent.
    std::map<std::string, int64_t> by_type;
    const auto* d = s.events_by_type().GetDescriptor();
    const auto* r = s.events_by_type().GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      int64_t n = r->GetInt64(s.events_by_type(), d->field(i));
      if (n != 0) by_type[d->field(i)->name()] = n;
    }
    CHECK(by_type == x.by_type);
  }
}

pid_t SpawnTend(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<std::string> all = {TEND_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  return Spawn(all, log_path);
}

pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  const pid_t parent = getpid();
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // A test that fails before it stops its child must not leave it running: it would hold the
    // test's output pipe open and ctest would wait for it forever (as a CI run once did).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    FILE* log = freopen(log_path.c_str(), "a", stderr);
    (void)log;
    dup2(STDERR_FILENO, STDOUT_FILENO);  // stdout to the log too, not the test's pipe
    std::vector<std::string> all = args;
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int ExitCode(pid_t pid) {
  int status = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL("child (pid " << pid << ") did not exit within 60 s");
  }
  REQUIRE(done == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int LoggedPort(const std::string& log_path, const std::string& marker) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    const std::string log = ReadFile(log_path);
    if (const size_t at = log.find(marker); at != std::string::npos) {
      return std::atoi(log.c_str() + at + marker.size());
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  FAIL("no \"" << marker << "\" in " << log_path << ":\n" << ReadFile(log_path));
  return 0;
}

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a = Loopback(0);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

v1::MemberRecord MemberRecordOf(const std::string& address,
                                const std::vector<int32_t>& partitions) {
  v1::MemberRecord record;
  record.set_format_version(1);
  record.set_address(address);
  record.set_topic("tend.events");
  const absl::Time now = absl::Now();
  record.mutable_written_at()->set_seconds(absl::ToUnixSeconds(now));
  record.mutable_written_at()->set_nanos(
      static_cast<int32_t>(absl::ToUnixMicros(now) % 1'000'000 * 1000));
  for (int32_t p : partitions) record.add_partitions(p);
  return record;
}

bool WaitUntil(const std::function<bool()>& done, absl::Duration limit, absl::Duration poll) {
  for (const absl::Time deadline = absl::Now() + limit; absl::Now() < deadline;) {
    if (done()) return true;
    absl::SleepFor(poll);
  }
  return done();
}

std::optional<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in a = Loopback(port);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return std::nullopt;
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1:", port, "\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string response;
  char buf[65536];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos || response.find(" 200 ") > response.find("\r\n")) {
    return std::nullopt;
  }
  return response.substr(body + 4);
}

std::vector<TopicRecord> ReadTopic(const std::string& brokers, const std::string& topic) {
  class FromStart : public PartitionListener {
   public:
    absl::StatusOr<int64_t> OnAssigned(int32_t partition) override {
      assigned.insert(partition);
      return 0;
    }
    void OnRevoked(absl::Span<const int32_t>) override {}
    void OnCaughtUp(int32_t partition) override { caught_up.insert(partition); }
    std::set<int32_t> assigned, caught_up;
  } listener;
  static std::atomic<int> readers{0};
  auto source = ConsumerSource::Create(
      {{"bootstrap.servers", brokers},
       {"group.id", absl::StrCat("tend-test-reader-", getpid(), "-", readers++)}},
      topic);
  REQUIRE(source.ok());
  REQUIRE((*source)->Start(&listener).ok());
  std::vector<TopicRecord> out;
  std::vector<LogRecord> batch;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (listener.assigned.empty() || listener.caught_up.size() < listener.assigned.size()) {
    REQUIRE(absl::Now() < deadline);
    auto more = (*source)->Poll(absl::Milliseconds(100), &batch);
    REQUIRE(more.ok());
    for (const LogRecord& r : batch) {
      TopicRecord& t = out.emplace_back();
      t.partition = r.partition;
      t.offset = r.offset;
      t.key = std::string(r.key);
      t.value = std::string(r.value);
      t.timestamp_ms = r.timestamp_ms;
      rd_kafka_headers_t* headers = nullptr;
      if (r.message != nullptr &&
          rd_kafka_message_headers(r.message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          t.headers[name] = std::string(static_cast<const char*>(value), value ? size : 0);
        }
      }
    }
  }
  (*source)->Close();
  return out;
}

std::unique_ptr<MockBroker> StartBroker(int partitions) {
  MockBrokerOptions options;
  options.partitions = partitions;
  auto broker = MockBroker::Start(options);
  REQUIRE(broker.ok());
  return *std::move(broker);
}

std::unique_ptr<MockBroker> BrokerWith(const std::vector<v1::Event>& events,
                                       absl::Duration tick_every, const KafkaProps& producer_props) {
  constexpr int kPartitions = 4;
  auto broker = StartBroker(kPartitions);
  KafkaProps props = {{"bootstrap.servers", broker->bootstrap()}};
  props.insert(props.end(), producer_props.begin(), producer_props.end());
  auto producer = Producer::Create(props);
  REQUIRE(producer.ok());
  if (tick_every > absl::ZeroDuration() && !events.empty()) {
    auto recorded = [](const v1::Event& e) { return absl::FromUnixSeconds(e.recorded_at().seconds()); };
    absl::Time next_tick = absl::FromUnixSeconds(0) +
                           absl::Floor(recorded(events.front()) - absl::FromUnixSeconds(0),
                                       tick_every) + tick_every;
    for (const auto& e : events) {
      while (next_tick <= recorded(e)) {
        const v1::Event tick = MakeClockTick("tend-ticker-test", next_tick);
        const std::string value = tick.SerializeAsString();
        for (int p = 0; p < kPartitions; ++p) {
          REQUIRE((*producer)->Produce(MockBrokerOptions().topic, p, "", value, {}, nullptr).ok());
        }
        next_tick += tick_every;
      }
      REQUIRE(ProduceEvent(producer->get(), MockBrokerOptions().topic, e).ok());
    }
    REQUIRE((*producer)->Flush(absl::Seconds(60)).ok());
    REQUIRE((*producer)->failed() == 0);
  } else {
    ProduceAll(producer->get(), MockBrokerOptions().topic, events);
  }
  return broker;
}

void FoldThroughKafka(const std::vector<v1::Event>& events, const std::string& db,
                      EngineOptions options, absl::Duration tick_every) {
  const auto broker = BrokerWith(events, tick_every);
  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  options.brokers = broker->bootstrap();
  options.exit_when_idle = true;
  auto engine = Engine::Create(options, storage->get());
  REQUIRE(engine.ok());
  std::atomic<bool> stop{false};
  REQUIRE((*engine)->Run(stop).ok());
}

}  // namespace tend::testing
