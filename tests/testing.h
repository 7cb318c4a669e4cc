// Helpers shared by tend's tests: temp dirs, a small simulated cohort, and a ground truth of the
// activity projection computed here, independently of projections/.
#ifndef TEND_TESTS_TESTING_H_
#define TEND_TESTS_TESTING_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "dev/mock_broker.h"
#include "engine/engine.h"
#include "kafka/kafka.h"
#include "tend/v1/cluster.pb.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"
#include "tests/cohort.h"
#include "tests/raw_db.h"
#include "tests/temp_dir.h"

namespace tend::testing {

struct Expected {
  int64_t unique_events = 0;
  std::map<std::string, int64_t> by_type;
  int64_t first_seen_s = INT64_MAX;
  int64_t last_event_s = INT64_MIN;
};
// What the activity projection must hold per patient after folding `events` exactly once each
// (by event_id per patient), computed directly from the events.
std::map<std::string, Expected> GroundTruth(const std::vector<v1::Event>& events);
// A first scan (channel "pharmacy") for each of `patients` patients p0, p1, ... (event ids
// scan-0, scan-1, ...), occurred and recorded a minute ago: a new cohort a welcome rule answers.
std::vector<v1::Event> RecentScans(int patients);
// Produces every event (key, value, headers as the Ingest service does) and waits for acks.
void ProduceAll(Producer* producer, const std::string& topic, const std::vector<v1::Event>& events);
// Produces to partition `partition` of the state changelog `topic` the patient state `state`
// as a record of commit `commit` whose value is tagged `tag` (changelog::kPut: as tend writes
// it), and waits for the ack. No checkpoint follows: the commit is unfinished until one does.
void ProduceChangelogState(Producer* producer, const std::string& topic, int32_t partition,
                           const v1::PatientState& state, uint64_t commit, char tag);
// The same with exactly `headers` (those tend writes: changelog::kCommitHeader, kPrevHeader).
void ProduceChangelogState(Producer* producer, const std::string& topic, int32_t partition,
                           const v1::PatientState& state, char tag,
                           std::span<const KafkaHeader> headers);
// Produces to partition `partition` of the state changelog `topic` a record no tend writes (a
// patient "forged"'s state under a commit id, its value of a format version past any known),
// which a restore of that partition refuses (DATA_LOSS), and waits for the ack.
void ProduceDamagedChangelogRecord(Producer* producer, const std::string& topic,
                                   int32_t partition);

// Every record a topic holds now, read from the start of each partition by a consumer
// (kafka/consumer.h) of a group of its own.
struct TopicRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key, value;
  int64_t timestamp_ms = -1;
  std::map<std::string, std::string> headers;  // the last value of each name
};
std::vector<TopicRecord> ReadTopic(const std::string& brokers, const std::string& topic);

// A mock cluster with the events and DLQ topics, `partitions` partitions each.
std::unique_ptr<MockBroker> StartBroker(int partitions);

// A fresh in-process broker (librdkafka's mock cluster, 4 partitions of tend.events) holding
// `events`, produced and acknowledged. With `tick_every` > 0, a ClockTick goes to every
// partition at each multiple of it, in recorded_at order among the events (which must be in
// recorded_at order), as a live ticker would have written them.
// `producer` adds properties of the producer that writes them (e.g. small batches: a fetch
// returns whole batches, so they bound how small the engine's reads can be).
std::unique_ptr<MockBroker> BrokerWith(const std::vector<v1::Event>& events,
                                       absl::Duration tick_every = absl::ZeroDuration(),
                                       const KafkaProps& producer = {});
// Starts the real `tend` binary with `args` (after the program name) as a child process, its
// stdout and stderr appended to `log_path`. Returns the child's pid. The child is killed when
// the thread that started it exits (PR_SET_PDEATHSIG): start it from the test's own thread.
pid_t SpawnTend(const std::vector<std::string>& args, const std::string& log_path);
// The same for any program (`argv[0]` a path), e.g. a Prometheus server.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path);
// The child's exit code (128 + signal when killed), waiting at most 60 s: then it is killed
// and the test fails, rather than hanging.
int ExitCode(pid_t pid);
// The whole file ("" when it cannot be read).
std::string ReadFile(const std::string& path);
// The port a child logged ("... <marker>N ..."), waiting up to 30 s; fails the test otherwise.
int LoggedPort(const std::string& log_path, const std::string& marker);
// A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot take port 0 and
// report it, such as Prometheus).
int FreePort();
// The body of GET http://127.0.0.1:PORT/PATH (HTTP/1.0); nullopt when the server cannot be
// reached or answers other than 200.
std::optional<std::string> HttpGet(int port, const std::string& path);
// Polls `done` every `poll` until it returns true or `limit` has passed; its last answer.
bool WaitUntil(const std::function<bool()>& done, absl::Duration limit,
               absl::Duration poll = absl::Microseconds(100));

// A member record (cluster/membership.h) as the instance at `address` would write it for
// tend.events, claiming `partitions`, written now (to the microsecond).
v1::MemberRecord MemberRecordOf(const std::string& address, const std::vector<int32_t>& partitions);

// Produces `events` (and clock ticks: BrokerWith) to a fresh in-process broker and runs the
// engine with `options` (brokers and exit_when_idle set here) into the state directory `db`
// until idle.
void FoldThroughKafka(const std::vector<v1::Event>& events, const std::string& db,
                      EngineOptions options, absl::Duration tick_every = absl::ZeroDuration());

// Every patient state in the directory, read through a secondary (reader) instance.
std::map<std::string, v1::PatientState> ReadStates(const std::string& db_dir);
// Writes `copies` more copies of every patient state in the (stopped) directory `db_dir`, each
// under its original's id suffixed "~1", "~2", ... and in its original's partition: a large
// directory to read, without folding one. The copies' dedupe windows are empty.
void CopyPatients(const std::string& db_dir, int copies);
// The stored checkpoints (empty when the directory does not exist yet).
std::vector<v1::PartitionCheckpoint> ReadCheckpoints(const std::string& db_dir);

// Checks (with Catch2 assertions) that `states` equals `expected` patient by patient.
void RequireMatchesGroundTruth(const std::map<std::string, v1::PatientState>& states,
                               const std::map<std::string, Expected>& expected);

}  // namespace tend::testing

#endif  // TEND_TESTS_TESTING_H_
