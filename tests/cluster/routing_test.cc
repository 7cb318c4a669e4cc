// cluster/ end to end, with real processes: two `tend engine` instances in one consumer group on
// the dev broker, each advertising its gRPC address, with the state changelog. GetPatient and
// Explain through either instance are answered by the owner of the patient's partition (named
// in the trailing metadata) and equal a single engine's fold of the same log; when an instance
// is killed, its partitions are UNAVAILABLE through the other - never answered from the stale
// copy it kept of them - until the other restored them from the changelog.
#include <signal.h>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kafka/partitioner.h"
#include "rules/rules.h"
#include "services/query_router.h"
#include "storage/storage.h"
#include "tend/v1/services.grpc.pb.h"
#include "tests/testing.h"

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
    auto storage = Storage::Open(dir.Sub("reference"));
    REQUIRE(storage.ok());
    auto ruleset = RuleSet::Load(rules);
    REQUIRE(ruleset.ok());
    EngineOptions options;
    options.brokers = broker->bootstrap();
    options.group_id = group;
    options.exit_when_idle = true;
    options.rules = std::make_shared<const RuleSet>(*std::move(ruleset));
    auto engine = Engine::Create(options, storage->get());
    REQUIRE(engine.ok());
    std::atomic<bool> stop{false};
    REQUIRE((*engine)->Run(stop).ok());
    want.clear();
    REQUIRE((*storage)
                ->ForEachState([&](const v1::PatientState& s) {
                  want[s.patient_id()] = s.SerializeAsString();
                  return absl::OkStatus();
                })
                .ok());
  };
  reference("reference-1");
  REQUIRE(want.size() >= 60);

  const std::string a_addr = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::string b_addr = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto spawn = [&](const std::string& name, const std::string& address) {
    return testing::SpawnTend(
        {"engine", "--brokers", broker->bootstrap(), "--db", dir.Sub(name), "--rules", rules,
         "--changelog", "tend.state.changelog", "--group", "cluster", "--grpc-listen", address,
         "--advertise", address, "--commit-interval-ms", "50", "--status-interval-s", "0",
         "--kafka", "session.timeout.ms=6000", "--kafka", "heartbeat.interval.ms=500"},
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

}  // namespace
}  // namespace tend
