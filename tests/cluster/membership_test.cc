// cluster/membership.h against a real Kafka protocol (the mock cluster): records that no
// instance would write - claims of partitions by the hundred thousand, huge addresses - are
// skipped, and members long silent are forgotten, so that whoever can write the topic cannot
// make an instance's memory grow without end.
#include "cluster/membership.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dev/mock_broker.h"
#include "kafka/kafka.h"
#include "tend/v1/cluster.pb.h"

namespace tend {
namespace {

// Waits until `members` (polled) says what `done` wants, or 20 s.
template <typename Done>
bool WaitFor(const Membership& m, Done done) {
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (absl::Now() < until) {
    if (done(m.Members())) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

bool Has(const std::vector<Member>& members, const std::string& address) {
  for (const Member& m : members) {
    if (m.address == address) return true;
  }
  return false;
}

TEST_CASE("member records beyond the bounds are skipped, and long-silent members forgotten",
          "[integration]") {
  auto broker = MockBroker::Start({.partitions = 4});
  REQUIRE(broker.ok());
  MembershipOptions options;
  options.kafka = {{"bootstrap.servers", (*broker)->bootstrap()}};
  options.address = "127.0.0.1:1";
  options.owned = [] { return std::vector<int32_t>{0, 1}; };
  options.heartbeat = absl::Milliseconds(100);
  options.expiry = absl::Milliseconds(300);
  auto membership = Membership::Start(options);
  REQUIRE(membership.ok());

  auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
  REQUIRE(producer.ok());
  auto forge = [&](const std::string& address, const std::vector<int32_t>& partitions) {
    v1::MemberRecord record;
    record.set_format_version(1);
    record.set_address(address);
    record.set_topic("tend.events");
    for (int32_t p : partitions) record.add_partitions(p);
    REQUIRE((*producer)
                ->Produce("tend.membership", 0, address, record.SerializeAsString(), {}, nullptr)
                .ok());
    REQUIRE((*producer)->Flush(absl::Seconds(10)).ok());
  };
  std::vector<int32_t> many;
  for (int32_t p = 0; p < 5000; ++p) many.push_back(p);
  forge("10.0.0.1:1", many);                          // more claims than any instance makes
  for (int32_t p = 5000; p < 30000; ++p) many.push_back(p);
  forge("10.0.0.4:1", many);                          // a record over 64 KiB: not even parsed
  forge("10.0.0.2:1", {2, 70000});                    // a partition past any topic's
  forge(std::string(300, 'a') + ":1", {2});           // an address past any host's
  forge("10.0.0.3:1", {2, 3});                        // well formed: heard
  REQUIRE(WaitFor(**membership, [](const std::vector<Member>& m) {
    return Has(m, "10.0.0.3:1") && Has(m, "127.0.0.1:1");
  }));
  const std::vector<Member> heard = (*membership)->Members();
  CHECK_FALSE(Has(heard, "10.0.0.1:1"));
  CHECK_FALSE(Has(heard, "10.0.0.2:1"));
  CHECK_FALSE(Has(heard, "10.0.0.4:1"));
  CHECK(heard.size() == 2);
  CHECK((*membership)->OwnerOf(3) == "10.0.0.3:1");
  // Ten expiries (3 s) without a word from it: forgotten, where the instance itself, which
  // keeps saying what it owns, stays.
  REQUIRE(WaitFor(**membership, [](const std::vector<Member>& m) {
    return !Has(m, "10.0.0.3:1") && Has(m, "127.0.0.1:1");
  }));
  CHECK((*membership)->OwnerOf(3) == std::nullopt);
  CHECK((*membership)->OwnerOf(1) == "127.0.0.1:1");
}

}  // namespace
}  // namespace tend
