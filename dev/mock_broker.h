// The development broker: librdkafka's mock cluster, a real Kafka-protocol broker held in memory.
// It keeps only ~5 MiB (or 100k message sets) per partition and forgets the oldest: for tests,
// development and the demo only, never as a store. Production points at real Kafka (deploy/).
//
// Thread-safe after creation; the cluster runs on librdkafka's own threads.
#ifndef TEND_DEV_MOCK_BROKER_H_
#define TEND_DEV_MOCK_BROKER_H_

#include <librdkafka/rdkafka.h>
// rdkafka_mock.h must come after rdkafka.h.
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "kafka/kafka.h"

namespace tend {

class TcpForwarder;

struct MockBrokerOptions {
  int partitions = 16;  // of the events topic; the DLQ gets the same count
  std::string topic = "tend.events";
  std::string dlq_topic = "tend.events.dlq";
  // The state changelog (storage/changelog.h), same partition count. The mock never compacts.
  std::string changelog_topic = "tend.state.changelog";
  // Who owns which partition (cluster/membership.h): one partition.
  std::string membership_topic = "tend.membership";
  int brokers = 1;
  // When non-zero, also listen on 127.0.0.1:port and forward to the mock's ephemeral listener,
  // so clients have a stable bootstrap address. They then follow the advertised address.
  int port = 0;
};

class MockBroker {
 public:
  static absl::StatusOr<std::unique_ptr<MockBroker>> Start(const MockBrokerOptions& options);
  ~MockBroker();

  // "host:port[,...]" for bootstrap.servers: the forwarded stable address when --port was given.
  const std::string& bootstrap() const { return bootstrap_; }
  // Creates another topic (kInvalidArgument when the mock refuses it).
  absl::Status CreateTopic(const std::string& topic, int partitions) const;
  // Borrowed cluster handle for fault injection in tests; valid while this object lives.
  rd_kafka_mock_cluster_t* cluster() const { return cluster_; }

 private:
  MockBroker() = default;
  KafkaHandle rk_;  // the mock cluster's bookkeeping handle; destroyed after the cluster
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::unique_ptr<TcpForwarder> forwarder_;
  std::string bootstrap_;
};

// tend broker: runs a mock cluster until `stop`; prints the bootstrap address as the first line
// of `out`.
absl::Status RunBroker(const MockBrokerOptions& options, const std::atomic<bool>& stop,
                       std::ostream& out);

}  // namespace tend

#endif  // TEND_DEV_MOCK_BROKER_H_
