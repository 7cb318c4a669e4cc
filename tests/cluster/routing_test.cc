// cluster/ end to end, with real processes: two `tend engine` instances in one consumer group on
// the dev broker, each advertising its gRPC address, with the state changelog. GetPatient and
// Explain through either instance are answered by the owner of the patient's partition (named
// in the trailing metadata) and equal a single engine's fold of the same log; when an instance
// is killed, its partitions are UNAVAILABLE through the other - never answered from the stale
// copy it kept of them - until the other restored them from the changelog.
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kafka/partitioner.h"
#include "projections/patient.h"
#include "rules/rules.h"
#include "services/query_router.h"
#include "storage/storage.h"
#include "storage/views.h"
#include "tend/v1/services.grpc.pb.h"
#include "tests/testing.h"
#include "tools/commands.h"

namespace tend {
namespace {

constexpr int kPartitions = 4;  // testing::BrokerWith's

struct Answer {
  grpc::Status status;
  v1::GetPatientResponse response;
  std::string answered_by;
  std::string partition;
};

Answer Get(v1::Query::Stub* stub, const std::string& patient) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetPatientRequest request;
  request.set_patient_id(patient);
  request.set_include_state(true);
  request.mutable_as_of()->set_seconds(1'900'000'000);  // one as-of for every answer
  Answer a;
  a.status = stub->GetPatient(&context, request, &a.response);
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find(kAnsweredByMetadata); it != trailers.end()) {
    a.answered_by = std::string(it->second.data(), it->second.size());
  }
  if (auto it = trailers.find(kPartitionMetadata); it != trailers.end()) {
    a.partition = std::string(it->second.data(), it->second.size());
  }
  return a;
}

std::unique_ptr<v1::Query::Stub> Stub(const std::string& address) {
  return v1::Query::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

bool Eventually(const std::function<bool()>& fn, absl::Duration limit) {
  for (const absl::Time deadline = absl::Now() + limit; absl::Now() < deadline;) {
    if (fn()) return true;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return fn();
}

// A lone engine's fold of the whole log into `dir` (resumed when it folded there before):
// every patient's state, serialized, and the commands it decided (its outbox: nothing delivers).
struct Fold {
  std::map<std::string, std::string> states;
  std::vector<v1::ReminderCommand> commands;
};
Fold FoldAlone(const MockBroker& broker, const std::string& dir, const std::string& rules,
               const std::string& group) {
  auto storage = Storage::Open(dir);
  REQUIRE(storage.ok());
  auto ruleset = RuleSet::Load(rules);
  REQUIRE(ruleset.ok());
  EngineOptions options;
  options.brokers = broker.bootstrap();
  options.group_id = group;
  options.exit_when_idle = true;
  options.rules = std::make_shared<const RuleSet>(*std::move(ruleset));
  auto engine = Engine::Create(options, storage->get());
  REQUIRE(engine.ok());
  std::atomic<bool> stop{false};
  REQUIRE((*engine)->Run(stop).ok());
  Fold fold;
  REQUIRE((*storage)
              ->ForEachState([&](const v1::PatientState& s) {
                fold.states[s.patient_id()] = s.SerializeAsString();
                return absl::OkStatus();
              })
              .ok());
  REQUIRE((*storage)
              ->ForEachCommand([&](int32_t, const v1::ReminderCommand& cmd) {
                fold.commands.push_back(cmd);
                return absl::OkStatus();
              })
              .ok());
  return fold;
}

// Every patient through ListPatients of `stub`, `page_size` at a time, viewed at kAsOf: each
// patient's serialized view (a repeat fails the test); the first failed call's status instead.
constexpr int64_t kAsOf = 1'900'000'000;  // 2030-03-17T17:46:40Z
struct Listed {
  grpc::Status status;
  std::map<std::string, std::string> views;
  std::set<std::string> answered_by;
};
Listed ListAll(v1::Query::Stub* stub, int page_size, bool activated_only = false) {
  Listed listed;
  v1::ListPatientsRequest request;
  request.set_page_size(page_size);
  request.mutable_as_of()->set_seconds(kAsOf);
  if (activated_only) request.set_activated(true);
  for (int pages = 0; pages < 1000; ++pages) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ListPatientsResponse response;
    listed.status = stub->ListPatients(&context, request, &response);
    if (!listed.status.ok()) return listed;
    auto it = context.GetServerTrailingMetadata().find(kAnsweredByMetadata);
    if (it != context.GetServerTrailingMetadata().end()) {
      for (absl::string_view a : absl::StrSplit(absl::string_view(it->second.data(), it->second.size()), ',')) {
        listed.answered_by.insert(std::string(a));
      }
    }
    for (const auto& view : response.patients()) {
      CHECK(listed.views.emplace(view.patient_id(), view.SerializeAsString()).second);
    }
    if (response.next_page_token().empty()) return listed;
    request.set_page_token(response.next_page_token());
  }
  FAIL("more than 1000 pages");
  return listed;
}

// What a lone engine's directory answers at kAsOf: every view (serialized), the activated
// patients', and the cohort statistics.
struct Expected {
  std::map<std::string, std::string> views, activated;
  v1::CohortStats stats;
};
Expected ExpectedOf(const std::string& dir) {
  Expected e;
  const auto config = projections::DefaultProjectionConfig();
  const absl::Time as_of = absl::FromUnixSeconds(kAsOf);
  for (const auto& [patient, state] : testing::ReadStates(dir)) {
    const v1::PatientView view = projections::ComputeView(config, state, as_of);
    e.views[patient] = view.SerializeAsString();
    if (view.activation().activated()) e.activated[patient] = view.SerializeAsString();
  }
  auto storage = Storage::Open(dir);
  REQUIRE(storage.ok());
  auto stats = ComputeCohortStats(**storage, config, as_of);
  REQUIRE(stats.ok());
  e.stats = *std::move(stats);
  return e;
}

// Where two maps of serialized views differ: the patients only one has, and the views that
// differ, as text ("" when equal).
std::string ViewsDiffer(const std::map<std::string, std::string>& got,
                        const std::map<std::string, std::string>& want) {
  std::string out;
  for (const auto& [id, view] : want) {
    auto it = got.find(id);
    if (it == got.end()) {
      absl::StrAppend(&out, "missing ", id, "; ");
    } else if (it->second != view) {
      // (Maps serialize in no set order: the messages are compared.)
      v1::PatientView x, y;
      REQUIRE(x.ParseFromString(it->second));
      REQUIRE(y.ParseFromString(view));
      google::protobuf::util::MessageDifferencer diff;
      std::string report;
      diff.ReportDifferencesToString(&report);
      if (!diff.Compare(x, y)) absl::StrAppend(&out, id, " differs: ", report, "; ");
    }
  }
  for (const auto& [id, view] : got) {
    if (want.count(id) == 0) absl::StrAppend(&out, "extra ", id, "; ");
  }
  return out;
}

grpc::Status GetStats(v1::Query::Stub* stub, v1::CohortStats* stats) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::CohortStatsRequest request;
  request.mutable_as_of()->set_seconds(kAsOf);
  v1::CohortStatsResponse response;
  const grpc::Status s = stub->CohortStats(&context, request, &response);
  *stats = response.stats();
  return s;
}

bool SameStats(const v1::CohortStats& a, const v1::CohortStats& b) {
  google::protobuf::util::MessageDifferencer diff;
  diff.set_float_comparison(google::protobuf::util::MessageDifferencer::APPROXIMATE);
  std::string report;
  diff.ReportDifferencesToString(&report);
  const bool same = diff.Compare(a, b);
  UNSCOPED_INFO(report);
  return same;
}

TEST_CASE("any instance answers for any patient through the owner of its partition, and a "
          "partition whose owner died is UNAVAILABLE, not stale, until restored elsewhere",
          "[integration]") {
  testing::TempDir dir;
  std::vector<v1::Event> events = testing::Cohort(60, 30, 3);
  const std::vector<v1::Event> scans = testing::RecentScans(20);
  events.insert(events.end(), scans.begin(), scans.end());
  auto broker = testing::BrokerWith(events);
  const std::string rules = std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml";

  // The reference: one engine alone over the same log.
  std::map<std::string, std::string> want;  // patient -> serialized state
  auto reference = [&](const std::string& group) {
    want = FoldAlone(*broker, dir.Sub("reference"), rules, group).states;
  };
  reference("reference-1");
  REQUIRE(want.size() >= 60);

  const std::string a_addr = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::string b_addr = absl::StrCat("127.0.0.1:", testing::FreePort());
  // Their member records signed with the cluster key (what an instance off loopback needs): an
  // instance that could not check the other's would answer nothing through it.
  const std::string cluster_key = dir.Sub("cluster.key");
  std::ofstream(cluster_key) << "# rotated in 2026-12\n" << std::string(64, 'c') << "\n";
  REQUIRE(::chmod(cluster_key.c_str(), 0600) == 0);
  auto spawn = [&](const std::string& name, const std::string& address) {
    return testing::SpawnTend(
        {"engine", "--brokers", broker->bootstrap(), "--db", dir.Sub(name), "--rules", rules,
         "--changelog", "tend.state.changelog", "--group", "cluster", "--grpc-listen", address,
         "--advertise", address, "--cluster-key-file", cluster_key, "--commit-interval-ms", "50",
         "--status-interval-s", "0", "--kafka", "session.timeout.ms=6000", "--kafka",
         "heartbeat.interval.ms=500"},
        dir.Sub(name + ".log"));
  };
  const pid_t a = spawn("a", a_addr);
  const pid_t b = spawn("b", b_addr);
  auto via_a = Stub(a_addr);
  auto via_b = Stub(b_addr);

  // Both instances own some partitions, and every patient is answered through each of them.
  std::map<std::string, std::string> owner_of;  // patient -> answering address
  auto all_answered = [&] {
    owner_of.clear();
    std::set<std::string> owners;
    for (const auto& [patient, state] : want) {
      const Answer x = Get(via_a.get(), patient), y = Get(via_b.get(), patient);
      if (!x.status.ok() || !y.status.ok() || x.answered_by != y.answered_by) return false;
      owner_of[patient] = x.answered_by;
      owners.insert(x.answered_by);
    }
    return owners.size() == 2;
  };
  REQUIRE(Eventually(all_answered, absl::Seconds(90)));
  // The log goes on while both own partitions: twenty scans again, twenty new patients.
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  testing::ProduceAll(producer->get(), "tend.events", testing::RecentScans(40));
  reference("reference-2");
  // And answered as the lone engine folded it, from the partition Kafka's partitioner names.
  REQUIRE(Eventually(
      [&] {
        for (const auto& [patient, state] : want) {
          const Answer x = Get(via_a.get(), patient);
          if (!x.status.ok() || x.response.state().SerializeAsString() != state) return false;
        }
        return true;
      },
      absl::Seconds(30)));
  for (const auto& [patient, state] : want) {
    const Answer x = Get(via_b.get(), patient);
    CHECK(x.status.ok());
    CHECK(x.response.state().SerializeAsString() == state);
    CHECK(x.partition == std::to_string(KafkaPartition(patient, kPartitions)));
    CHECK(x.response.view().patient_id() == patient);
  }

  // ListPatients and CohortStats through either instance gather from both owners, and equal
  // what the lone engine's directory answers; so do `tend dump --grpc` and `tend report --grpc`.
  const Expected expected = ExpectedOf(dir.Sub("reference"));
  for (v1::Query::Stub* via : {via_a.get(), via_b.get()}) {
    const Listed all = ListAll(via, 9);
    INFO(all.status.error_message());
    REQUIRE(all.status.ok());
    CHECK(ViewsDiffer(all.views, expected.views) == "");
    CHECK(all.answered_by == std::set<std::string>{a_addr, b_addr});
    const Listed activated = ListAll(via, 4, true);
    REQUIRE(activated.status.ok());
    CHECK(ViewsDiffer(activated.views, expected.activated) == "");
    v1::CohortStats stats;
    const grpc::Status s = GetStats(via, &stats);
    INFO(s.error_message());
    REQUIRE(s.ok());
    CHECK(SameStats(stats, expected.stats));
  }
  const std::string as_of_flag = "2030-03-17T17:46:40Z";
  const pid_t dump = testing::SpawnTend({"dump", "--grpc", b_addr, "--as-of", as_of_flag,
                                         "--out", dir.Sub("cluster.jsonl")},
                                        dir.Sub("dump.log"));
  const pid_t report = testing::SpawnTend({"report", "--grpc", a_addr, "--as-of", as_of_flag,
                                           "--out", dir.Sub("cluster.html")},
                                          dir.Sub("report.log"));
  INFO(testing::ReadFile(dir.Sub("dump.log")) << testing::ReadFile(dir.Sub("report.log")));
  REQUIRE(testing::ExitCode(dump) == 0);
  REQUIRE(testing::ExitCode(report) == 0);
  {
    DumpOptions lone;
    lone.db_dir = dir.Sub("reference");
    lone.as_of = absl::FromUnixSeconds(kAsOf);
    std::ostringstream out;
    REQUIRE(DumpPatients(lone, out, std::cerr).ok());
    std::multiset<std::string> want_lines, got_lines;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) want_lines.insert(line);
    std::ifstream file(dir.Sub("cluster.jsonl"));
    for (std::string line; std::getline(file, line);) got_lines.insert(line);
    CHECK(got_lines == want_lines);
    const std::string stamp = testing::ReadFile(dir.Sub("cluster.jsonl.snapshot.json"));
    CHECK(stamp.find("\"grpc\":\"" + b_addr + "\"") != std::string::npos);
    CHECK(stamp.find("\"next_offsets\":{\"0\":") != std::string::npos);
    CHECK(testing::ReadFile(dir.Sub("cluster.html"))
              .find(absl::StrCat(expected.stats.patients(), " patients")) != std::string::npos);
  }

  // B dies without a word. Its patients, asked through A, are UNAVAILABLE with a retry hint
  // (A still has the copy it folded before B joined: a stale answer would be OK and wrong).
  std::string b_patient;
  for (const auto& [patient, owner] : owner_of) {
    if (owner == b_addr) b_patient = patient;
  }
  REQUIRE(!b_patient.empty());
  REQUIRE(kill(b, SIGKILL) == 0);
  CHECK(testing::ExitCode(b) == 128 + SIGKILL);
  const Answer during = Get(via_a.get(), b_patient);
  CHECK(during.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(during.status.error_message().find("retry") != std::string::npos);
  // The gathered queries need B's partitions too: UNAVAILABLE, not the part A owns (nor A's
  // stale copy of B's) passed off as the whole.
  const Listed listed_during = ListAll(via_a.get(), 1000);
  CHECK(listed_during.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  v1::CohortStats stats_during;
  CHECK(GetStats(via_a.get(), &stats_during).error_code() == grpc::StatusCode::UNAVAILABLE);

  // A takes B's partitions (the session times out), restores them from the changelog, and
  // answers for everyone as the lone engine does.
  REQUIRE(Eventually(
      [&] {
        for (const auto& [patient, state] : want) {
          const Answer x = Get(via_a.get(), patient);
          if (!x.status.ok() || x.answered_by != a_addr ||
              x.response.state().SerializeAsString() != state) {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(60)));
  // A alone gathers from itself: every patient, as the lone engine has them.
  const Listed after = ListAll(via_a.get(), 50);
  REQUIRE(after.status.ok());
  CHECK(ViewsDiffer(after.views, expected.views) == "");
  CHECK(after.answered_by == std::set<std::string>{a_addr});
  REQUIRE(kill(a, SIGTERM) == 0);
  CHECK(testing::ExitCode(a) == 0);
  // A restored B's partitions from the changelog (their tail when A had them before B joined,
  // whole otherwise) and did not read their records again: it read fewer records than the log
  // holds, though it folded all of them (B folded the later scans of its partitions alone).
  const std::string a_log = testing::ReadFile(dir.Sub("a.log"));
  INFO(a_log);
  const size_t killed_at = a_log.find("revoked", a_log.rfind("advertising"));
  CHECK(a_log.find("restored from tend.state.changelog", killed_at) != std::string::npos);
  const size_t stopped = a_log.rfind("engine stopped: ");
  REQUIRE(stopped != std::string::npos);
  const int64_t a_records = std::stoll(a_log.substr(stopped + 16));
  CHECK(a_records < static_cast<int64_t>(events.size()) + 40);
}

// Every line of a sink's --out file, as command ids (in order, repeats kept).
std::vector<std::string> SinkCommands(const std::string& path) {
  std::vector<std::string> ids;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    v1::ReminderCommand c;
    REQUIRE(google::protobuf::util::JsonStringToMessage(line, &c).ok());
    ids.push_back(c.command_id());
  }
  return ids;
}

int64_t StoppedRecords(const std::string& log) {
  const size_t stopped = log.rfind("engine stopped: ");
  REQUIRE(stopped != std::string::npos);
  return std::stoll(log.substr(stopped + 16));
}

// Three engines and a sink; one engine killed mid-fold, a fourth started later.
TEST_CASE("a cluster that loses an engine and gains one answers as a lone engine and delivers "
          "each command once",
          "[integration]") {
  testing::TempDir dir;
  auto broker = testing::StartBroker(16);
  std::vector<v1::Event> events = testing::Cohort(300, 45, 21);
  const std::vector<v1::Event> scans = testing::RecentScans(120);  // welcomes, due now
  events.insert(events.end(), scans.begin(), scans.end());
  {
    auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
    REQUIRE(producer.ok());
    testing::ProduceAll(producer->get(), "tend.events", events);
  }
  const std::string rules = std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml";

  const std::string sink_out = dir.Sub("sink.jsonl");
  const pid_t sink = testing::SpawnTend(
      {"sink", "--listen", "127.0.0.1:0", "--out", sink_out}, dir.Sub("sink.log"));
  const int sink_port = testing::LoggedPort(dir.Sub("sink.log"), "listening on ");

  std::map<std::string, std::string> address;  // instance -> advertised address
  auto spawn = [&](const std::string& name) {
    address[name] = absl::StrCat("127.0.0.1:", testing::FreePort());
    return testing::SpawnTend(
        {"engine", "--brokers", broker->bootstrap(), "--db", dir.Sub(name), "--rules", rules,
         "--changelog", "tend.state.changelog", "--group", "cluster", "--grpc-listen",
         address[name], "--advertise", address[name], "--sink",
         absl::StrCat("127.0.0.1:", sink_port), "--tick-interval-s", "0",
         "--commit-interval-ms", "100", "--commit-max-records", "2000", "--status-interval-s",
         "1", "--kafka", "session.timeout.ms=6000", "--kafka", "heartbeat.interval.ms=500"},
        dir.Sub(name + ".log"));
  };
  const pid_t a = spawn("a");
  const pid_t b = spawn("b");
  const pid_t c = spawn("c");

  // C dies in the middle of its fold: once it has folded some records, not all.
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  for (;;) {
    const std::string log = testing::ReadFile(dir.Sub("c.log"));
    const size_t last = log.rfind("status: ");
    if (last != std::string::npos && log.compare(last, 17, "status: 0 records") != 0) break;
    INFO(log);
    REQUIRE(absl::Now() < deadline);
    absl::SleepFor(absl::Milliseconds(50));
  }
  REQUIRE(kill(c, SIGKILL) == 0);
  REQUIRE(testing::ExitCode(c) == 128 + SIGKILL);

  // The lone engine's fold of the same log.
  const Fold alone = FoldAlone(*broker, dir.Sub("reference"), rules, "reference");
  const std::map<std::string, std::string>& want = alone.states;
  const std::vector<v1::ReminderCommand>& decided = alone.commands;

  // Through ANY instance, every patient as the lone engine folded it: first through the two
  // survivors (they took C's partitions), then, with a fourth instance started once they have,
  // through all three.
  std::map<std::string, std::unique_ptr<v1::Query::Stub>> stubs;
  for (const char* name : {"a", "b"}) stubs[name] = Stub(address[name]);
  auto all_equal = [&] {
    for (const auto& [name, stub] : stubs) {
      for (const auto& [patient, state] : want) {
        const Answer x = Get(stub.get(), patient);
        if (!x.status.ok() || x.response.state().SerializeAsString() != state) return false;
      }
    }
    return true;
  };
  REQUIRE(Eventually(all_equal, absl::Seconds(150)));
  const pid_t d = spawn("d");
  stubs["d"] = Stub(address["d"]);
  const bool equal = Eventually(all_equal, absl::Seconds(150));
  INFO(testing::ReadFile(dir.Sub("a.log")) << "\n--- d ---\n" << testing::ReadFile(dir.Sub("d.log")));
  REQUIRE(equal);

  // Every command due now reached the sink; the sink holds nothing the lone engine did not
  // decide, and nothing twice.
  const absl::Time now = absl::Now();
  std::set<std::string> due, all;
  for (const v1::ReminderCommand& cmd : decided) {
    all.insert(cmd.command_id());
    if (absl::FromUnixSeconds(cmd.not_before().seconds()) <= now - absl::Seconds(2) &&
        absl::FromUnixSeconds(cmd.expires_at().seconds()) > now + absl::Seconds(60)) {
      due.insert(cmd.command_id());
    }
  }
  REQUIRE(!due.empty());
  REQUIRE(Eventually(
      [&] {
        const std::vector<std::string> got = SinkCommands(sink_out);
        const std::set<std::string> held(got.begin(), got.end());
        return std::includes(held.begin(), held.end(), due.begin(), due.end());
      },
      absl::Seconds(30)));
  const std::vector<std::string> got = SinkCommands(sink_out);
  const std::set<std::string> held(got.begin(), got.end());
  CHECK(held.size() == got.size());
  CHECK(std::includes(all.begin(), all.end(), held.begin(), held.end()));

  for (pid_t p : {a, b, d}) REQUIRE(kill(p, SIGTERM) == 0);
  for (pid_t p : {a, b, d}) CHECK(testing::ExitCode(p) == 0);
  REQUIRE(kill(sink, SIGTERM) == 0);
  CHECK(testing::ExitCode(sink) == 0);
  const std::string sink_log = testing::ReadFile(dir.Sub("sink.log"));
  INFO(sink_log);
  const size_t dups = sink_log.rfind(" duplicates acknowledged");
  REQUIRE(dups != std::string::npos);
  const size_t from = sink_log.rfind(' ', dups - 1) + 1;
  WARN("the sink accepted " << held.size() << " commands; duplicates offered to it during the "
                            << "moves: " << sink_log.substr(from, dups - from));

  // The fourth instance took its partitions from the changelog, and read none of their records.
  const std::string d_log = testing::ReadFile(dir.Sub("d.log"));
  INFO(d_log);
  CHECK(d_log.find("restored from tend.state.changelog (whole)") != std::string::npos);
  CHECK(StoppedRecords(d_log) == 0);
  // Neither did the survivors re-read C's: together they read fewer records than the log holds
  // twice over... at most once each, since every partition they took was restored.
  const int64_t read = StoppedRecords(testing::ReadFile(dir.Sub("a.log"))) +
                       StoppedRecords(testing::ReadFile(dir.Sub("b.log")));
  CHECK(read <= static_cast<int64_t>(events.size()));
}

}  // namespace
}  // namespace tend
