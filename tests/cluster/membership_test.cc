// cluster/membership.h against a real Kafka protocol (the mock cluster): records that no
// instance would write - claims of partitions by the hundred thousand, huge addresses - are
// skipped, and members long silent are forgotten, so that whoever can write the topic cannot
// make an instance's memory grow without end. A member's refused partitions are heard with their
// reasons, bounded and made printable.
#include "cluster/membership.h"

#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dev/mock_broker.h"
#include "kafka/kafka.h"
#include "tend/v1/cluster.pb.h"
#include "tests/testing.h"

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

// A member record as `address` would write it, claiming `partitions` and refusing `refused`.
v1::MemberRecord RecordOf(const std::string& address, const std::vector<int32_t>& partitions,
                          const std::map<int32_t, std::string>& refused = {}) {
  v1::MemberRecord record = testing::MemberRecordOf(address, partitions);
  for (const auto& [p, why] : refused) {
    v1::Refusal* r = record.add_refused();
    r->set_partition(p);
    r->set_why(why);
  }
  return record;
}

// Writes `value` under `key` to the membership topic, with a MAC header when `mac` is set.
void Write(Producer* producer, const std::string& key, const std::string& value,
           std::optional<std::string> mac = std::nullopt) {
  std::vector<KafkaHeader> headers;
  if (mac.has_value()) headers.push_back({kMemberMacHeader, *mac});
  REQUIRE(producer->Produce("tend.membership", 0, key, value, headers, nullptr).ok());
  REQUIRE(producer->Flush(absl::Seconds(10)).ok());
}

// Writes a member record as `address` would, unsigned.
void Forge(Producer* producer, const std::string& address, const std::vector<int32_t>& partitions,
           const std::map<int32_t, std::string>& refused = {}) {
  Write(producer, address, RecordOf(address, partitions, refused).SerializeAsString());
}

// A deployment with a cluster key: the dev broker, a producer writing the membership topic as
// anyone who may write it, the key, and the options of an instance at 127.0.0.1:1 owning
// partition 0 with that key.
struct Keyed {
  std::unique_ptr<MockBroker> broker;
  std::unique_ptr<Producer> producer;
  std::shared_ptr<const RecordKeys> keys;
  MembershipOptions options;

  // Writes `record` as its instance would: with its MAC under the key when `with_mac`.
  void WriteRecord(const v1::MemberRecord& record, bool with_mac = true) {
    const std::string value = record.SerializeAsString();
    std::optional<std::string> mac;
    if (with_mac) mac = keys->Sign(kMemberMacDomain, record.address(), value);
    Write(producer.get(), record.address(), value, mac);
  }
};

Keyed StartKeyed() {
  Keyed k;
  auto broker = MockBroker::Start({.partitions = 4});
  REQUIRE(broker.ok());
  k.broker = *std::move(broker);
  auto producer = Producer::Create({{"bootstrap.servers", k.broker->bootstrap()}});
  REQUIRE(producer.ok());
  k.producer = *std::move(producer);
  auto keys = RecordKeys::Parse(std::string(32, 'k'), "key");
  REQUIRE(keys.ok());
  k.keys = *keys;
  k.options.kafka = {{"bootstrap.servers", k.broker->bootstrap()}};
  k.options.address = "127.0.0.1:1";
  k.options.keys = k.keys;
  k.options.owned = [] { return std::vector<int32_t>{0}; };
  k.options.heartbeat = absl::Milliseconds(100);
  return k;
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
    Forge(producer->get(), address, partitions);
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

TEST_CASE("a member's refused partitions are heard with their reasons, bounded and printable, "
          "and refusals beyond the bounds are skipped",
          "[integration]") {
  auto broker = MockBroker::Start({.partitions = 4});
  REQUIRE(broker.ok());
  absl::Mutex mu;
  std::map<int32_t, std::string> refusing = {
      {1, absl::StrCat("DATA_LOSS: a record \x1b[2J of format 99 \xff", std::string(3000, 'x'))}};
  MembershipOptions options;
  options.kafka = {{"bootstrap.servers", (*broker)->bootstrap()}};
  options.address = "127.0.0.1:1";
  options.owned = [] { return std::vector<int32_t>{0}; };
  options.refused = [&] {
    absl::MutexLock lock(&mu);
    return refusing;
  };
  options.heartbeat = absl::Milliseconds(100);
  options.expiry = absl::Milliseconds(300);
  auto membership = Membership::Start(options);
  REQUIRE(membership.ok());
  auto refuser_of = [&](int32_t partition) {
    std::optional<Membership::Refuser> r;
    const absl::Time until = absl::Now() + absl::Seconds(20);
    while (!(r = (*membership)->RefuserOf(partition)).has_value() && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return r;
  };

  // Its own refusal, as every instance hears it: the reason cut and its escape made text.
  const auto own = refuser_of(1);
  REQUIRE(own.has_value());
  CHECK(own->address == "127.0.0.1:1");
  CHECK(own->why.find("DATA_LOSS: a record \\x1b[2J of format 99") == 0);
  CHECK(own->why.find('\x1b') == std::string::npos);
  // Not UTF-8 as written: made printable by the writer, or the record would not parse as proto3
  // and every reader would drop the instance's claims with it.
  CHECK(own->why.find("99 \\xff") != std::string::npos);
  CHECK(own->why.size() <= kMaxRefusalWhyBytes);
  CHECK(own->why.find("more bytes]") != std::string::npos);
  CHECK((*membership)->OwnerOf(1) == std::nullopt);  // held, not owned
  CHECK((*membership)->OwnerOf(0) == "127.0.0.1:1");
  CHECK((*membership)->RefuserOf(0) == std::nullopt);

  auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
  REQUIRE(producer.ok());
  Forge(producer->get(), "10.0.0.6:1", {2}, {{70000, "far"}});  // a partition past any topic's
  Forge(producer->get(), "10.0.0.7:1", {2}, {{3, std::string(kMaxRefusalWhyBytes + 1, 'y')}});
  Forge(producer->get(), "10.0.0.5:1", {2}, {{3, "damaged\x07"}});  // well formed: heard
  const auto other = refuser_of(3);
  REQUIRE(other.has_value());
  CHECK(other->address == "10.0.0.5:1");
  CHECK(other->why == "damaged\\x07");
  const std::vector<Member> heard = (*membership)->Members();
  CHECK_FALSE(Has(heard, "10.0.0.6:1"));
  CHECK_FALSE(Has(heard, "10.0.0.7:1"));

  // Restored (the engine refuses it no longer): said again, and heard.
  {
    absl::MutexLock lock(&mu);
    refusing.clear();
  }
  auto gone = [&](int32_t partition) {
    const absl::Time until = absl::Now() + absl::Seconds(20);
    while ((*membership)->RefuserOf(partition).has_value() && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return !(*membership)->RefuserOf(partition).has_value();
  };
  CHECK(gone(1));
  CHECK((*membership)->OwnerOf(0) == "127.0.0.1:1");
  // A member silent past the expiry: its refusal is void with its claims.
  CHECK(gone(3));
  CHECK((*membership)->OwnerOf(2) == std::nullopt);
}

TEST_CASE(
    "with a cluster key only member records signed with it are heard, and the ignored "
    "are counted",
    "[integration]") {
  Keyed k = StartKeyed();
  auto other_keys = RecordKeys::Parse(std::string(32, 'o'), "other key");
  REQUIRE(other_keys.ok());
  const auto& keys = k.keys;
  const MembershipOptions& options = k.options;
  auto membership = Membership::Start(options);
  REQUIRE(membership.ok());
  Producer* producer = k.producer.get();
  auto value = [](const std::string& address, std::vector<int32_t> partitions) {
    return RecordOf(address, partitions).SerializeAsString();
  };
  auto sign = [](const RecordKeys& by, const std::string& address, const std::string& v) {
    return by.Sign(kMemberMacDomain, address, v);
  };
  // Each value made once: a record's time is in it, so two makings differ.
  const std::string v1 = value("10.0.0.1:1", {1}), v1b = value("10.0.0.1:1", {1, 2});
  const std::string v2 = value("10.0.0.2:1", {1}), v3 = value("10.0.0.3:1", {1});
  const std::string v4 = value("10.0.0.4:1", {1}), v6 = value("10.0.0.6:1", {3});
  Write(producer, "10.0.0.1:1", v1);                                               // no MAC
  Write(producer, "10.0.0.2:1", v2, sign(**other_keys, "10.0.0.2:1", v2));         // another key
  Write(producer, "10.0.0.1:1", v1b, sign(*keys, "10.0.0.1:1", v1));               // another value
  Write(producer, "10.0.0.3:1", v3, sign(*keys, "10.0.0.3:1", v3).substr(0, 31));  // cut short
  // The key's MAC of the same value for another key of the topic (the MAC covers the key).
  Write(producer, "10.0.0.5:1", v4, sign(*keys, "10.0.0.4:1", v4));
  Write(producer, "10.0.0.6:1", v6, sign(*keys, "10.0.0.6:1", v6));  // signed: heard
  REQUIRE(WaitFor(**membership, [](const std::vector<Member>& m) {
    return Has(m, "10.0.0.6:1") && Has(m, "127.0.0.1:1");
  }));
  const std::vector<Member> heard = (*membership)->Members();
  CHECK(heard.size() == 2);
  CHECK((*membership)->OwnerOf(1) == std::nullopt);
  CHECK((*membership)->OwnerOf(3) == "10.0.0.6:1");
  CHECK((*membership)->OwnerOf(0) == "127.0.0.1:1");  // its own records are signed
  MembershipStats stats = (*membership)->Stats();
  CHECK(stats.unsigned_records == 5);
  CHECK(stats.beyond_bounds == 0);
  CHECK(stats.heard >= 2);
  CHECK(stats.live_members == 2);

  // An instance without the key hears signed records too (a rolling change to the key): the
  // keyed one hears it only once it has the key.
  MembershipOptions plain = options;
  plain.address = "127.0.0.1:2";
  plain.keys = nullptr;
  plain.owned = [] { return std::vector<int32_t>{2}; };
  auto unkeyed = Membership::Start(plain);
  REQUIRE(unkeyed.ok());
  REQUIRE(WaitFor(**unkeyed, [](const std::vector<Member>& m) {
    return Has(m, "127.0.0.1:1") && Has(m, "10.0.0.6:1") && Has(m, "10.0.0.1:1");
  }));
  CHECK((*unkeyed)->OwnerOf(0) == "127.0.0.1:1");
  CHECK((*unkeyed)->Stats().unsigned_records == 0);
  absl::SleepFor(absl::Milliseconds(500));  // several of the unkeyed one's heartbeats
  CHECK((*membership)->OwnerOf(2) == std::nullopt);
  CHECK((*membership)->Stats().unsigned_records > stats.unsigned_records);
}

TEST_CASE(
    "with a cluster key a signed record written again, a tombstone and a record without a "
    "MAC are ignored, and only what came after the start is counted",
    "[integration]") {
  Keyed k = StartKeyed();
  Producer* producer = k.producer.get();
  // Before the instance starts: a record without a MAC (history: not counted when ignored).
  Forge(producer, "10.0.0.9:1", {3});
  const MembershipOptions& options = k.options;
  auto membership = Membership::Start(options);
  REQUIRE(membership.ok());

  // An instance's first record, then its next: it owns partition 2, then partition 1.
  const v1::MemberRecord first = RecordOf("10.0.0.1:1", {2});
  absl::SleepFor(absl::Milliseconds(5));
  const v1::MemberRecord next = RecordOf("10.0.0.1:1", {1});
  k.WriteRecord(first);
  k.WriteRecord(next);
  REQUIRE(WaitFor(**membership, [&](const std::vector<Member>&) {
    return (*membership)->OwnerOf(1) == "10.0.0.1:1";
  }));
  // Its first record written again (by whoever may write the topic, without the key): the MAC
  // is sound, but it was written before the one heard last. Not heard: partition 2 stays
  // unowned, partition 1 stays the instance's.
  k.WriteRecord(first);
  k.WriteRecord(next);  // the last one heard, again: written at the same nanosecond
  Write(producer, "10.0.0.1:1", "", std::nullopt);  // a value of no bytes: not a tombstone
  // A tombstone (a null value: a view without data).
  REQUIRE(
      producer->Produce("tend.membership", 0, "10.0.0.1:1", absl::string_view(), {}, nullptr).ok());
  REQUIRE(producer->Flush(absl::Seconds(10)).ok());
  const absl::Time until = absl::Now() + absl::Seconds(20);
  MembershipStats stats;
  while ((stats = (*membership)->Stats()).replayed + stats.unsigned_records < 4 &&
         absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  CHECK(stats.replayed == 2);
  CHECK(stats.unsigned_records == 2);  // the empty value (no MAC) and the tombstone
  CHECK(stats.heard_unsigned == 0);
  CHECK((*membership)->OwnerOf(2) == std::nullopt);
  CHECK((*membership)->OwnerOf(1) == "10.0.0.1:1");
  CHECK((*membership)->OwnerOf(3) == std::nullopt);  // the record from before: ignored too

  // An instance that also hears records without a MAC (a move to signed records under way):
  // the one from before its start is heard and counted apart; a wrong MAC is still ignored.
  MembershipOptions moving = options;
  moving.address = "127.0.0.1:2";
  moving.accept_unsigned = true;
  auto lenient = Membership::Start(moving);
  REQUIRE(lenient.ok());
  const v1::MemberRecord wrong = RecordOf("10.0.0.2:1", {2});
  Write(producer, "10.0.0.2:1", wrong.SerializeAsString(), std::string(32, 'x'));
  REQUIRE(WaitFor(**lenient, [](const std::vector<Member>& m) {
    return Has(m, "10.0.0.9:1") && Has(m, "127.0.0.1:1") && Has(m, "127.0.0.1:2");
  }));
  CHECK((*lenient)->OwnerOf(3) == "10.0.0.9:1");
  MembershipStats lenient_stats = (*lenient)->Stats();
  CHECK(lenient_stats.heard_unsigned >= 1);
  const absl::Time until2 = absl::Now() + absl::Seconds(20);
  while ((lenient_stats = (*lenient)->Stats()).unsigned_records < 1 && absl::Now() < until2) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  CHECK(lenient_stats.unsigned_records == 1);  // the wrong MAC (the tombstone: before its start)
  CHECK_FALSE(Has((*lenient)->Members(), "10.0.0.2:1"));
  CHECK((*lenient)->OwnerOf(2) == std::nullopt);
}

// The partitions a member claims as heard (empty when not heard).
std::vector<int32_t> ClaimsOf(const Membership& m, const std::string& address) {
  for (const Member& member : m.Members()) {
    if (member.address == address) return member.partitions;
  }
  return {};
}

TEST_CASE(
    "a signed instance whose clock ran ahead is heard again within one expiry of being set "
    "right, and a record without a MAC dated ahead silences no one",
    "[integration]") {
  Keyed k = StartKeyed();
  MembershipOptions& options = k.options;
  options.accept_unsigned = true;  // a move to signed records under way
  options.expiry = absl::Seconds(2);
  auto membership = Membership::Start(options);
  REQUIRE(membership.ok());
  auto written_at = [](v1::MemberRecord record, absl::Time at) {
    record.mutable_written_at()->set_seconds(absl::ToUnixSeconds(at));
    record.mutable_written_at()->set_nanos(
        static_cast<int32_t>(absl::ToUnixNanos(at) % 1'000'000'000));
    return record;
  };
  auto write = [&](const v1::MemberRecord& record, bool with_mac) {
    k.WriteRecord(record, with_mac);
  };
  auto heard = [&](const std::string& address, std::vector<int32_t> claims) {
    return WaitFor(**membership, [&](const std::vector<Member>&) {
      return ClaimsOf(**membership, address) == claims;
    });
  };

  // Written an hour ahead (its host's clock), then set right: the next record, written now, is
  // not after the one heard, and is taken for a record written again; one expiry later (the bar
  // is held at most one expiry ahead of this clock), the instance is heard again.
  write(written_at(RecordOf("10.0.0.7:1", {1}), absl::Now() + absl::Hours(1)), true);
  REQUIRE(heard("10.0.0.7:1", {1}));
  write(written_at(RecordOf("10.0.0.7:1", {2}), absl::Now()), true);
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while ((*membership)->Stats().replayed < 1 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  CHECK((*membership)->Stats().replayed == 1);
  CHECK(ClaimsOf(**membership, "10.0.0.7:1") == std::vector<int32_t>{1});
  absl::SleepFor(options.expiry + absl::Milliseconds(200));
  write(written_at(RecordOf("10.0.0.7:1", {2}), absl::Now()), true);
  CHECK(heard("10.0.0.7:1", {2}));

  // A record without a MAC, dated far ahead, for an address: heard (the move allows it), but it
  // sets no bar, so that address's signed records, written now, are heard after it.
  write(written_at(RecordOf("10.0.0.8:1", {3}),
                   absl::FromCivil(absl::CivilSecond(9999, 1, 1), absl::UTCTimeZone())),
        false);
  REQUIRE(heard("10.0.0.8:1", {3}));
  write(written_at(RecordOf("10.0.0.8:1", {1}), absl::Now()), true);
  CHECK(heard("10.0.0.8:1", {1}));
  CHECK((*membership)->Stats().heard_unsigned == 1);
  CHECK((*membership)->Stats().replayed == 1);
}

}  // namespace
}  // namespace tend
