// kafka/partitioner.h: the partition tend computes for a key is the one librdkafka's producer
// (murmur2_random, as tend's producers are configured) puts it in, on a real broker protocol.
#include "kafka/partitioner.h"

#include <catch2/catch.hpp>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dev/mock_broker.h"
#include "kafka/kafka.h"

namespace tend {
namespace {

TEST_CASE("the partition of a key is librdkafka's murmur2 partitioner's", "[kafka]") {
  for (int partitions : {1, 7, 16, 32}) {
    MockBrokerOptions options;
    options.partitions = partitions;
    auto broker = MockBroker::Start(options);
    REQUIRE(broker.ok());
    auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
    REQUIRE(producer.ok());
    // Keys of every length mod 4 (the hash's tail), ASCII and not (patient ids are never empty:
    // librdkafka spreads keyless records at random).
    std::vector<std::string> keys = {"a", "ab", "abc", "abcd", "p0000001", "\xe6\x82\xa3\xe8\x80\x85"};
    for (int i = 0; i < 300; ++i) keys.push_back(absl::StrCat("patient-", i * 7919));
    std::vector<std::future<Delivery>> deliveries;
    for (const std::string& key : keys) {
      auto promise = std::make_shared<std::promise<Delivery>>();
      deliveries.push_back(promise->get_future());
      REQUIRE((*producer)
                  ->Produce("tend.events", RD_KAFKA_PARTITION_UA, key, "v", {},
                            [promise](const Delivery& d) { promise->set_value(d); })
                  .ok());
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      const Delivery d = deliveries[i].get();
      REQUIRE(d.status.ok());
      INFO("key " << keys[i] << ", " << partitions << " partitions");
      CHECK(d.partition == KafkaPartition(keys[i], partitions));
    }
  }
}

}  // namespace
}  // namespace tend
