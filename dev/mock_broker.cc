#include "dev/mock_broker.h"

#include <chrono>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "dev/tcp_forwarder.h"

namespace tend {

absl::StatusOr<std::unique_ptr<MockBroker>> MockBroker::Start(const MockBrokerOptions& options) {
  if (options.partitions < 1 || options.partitions > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--partitions must be 1..1024, got ", options.partitions));
  }
  // The cluster needs an rd_kafka_t for its bookkeeping; a bare producer handle does.
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf({{"log_level", "3"}}));
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof(err));
  if (rk == nullptr) return absl::InternalError(absl::StrCat("creating mock handle: ", err));
  conf.release();
  auto broker = std::unique_ptr<MockBroker>(new MockBroker());
  broker->rk_.reset(rk);
  broker->cluster_ = rd_kafka_mock_cluster_new(rk, options.brokers);
  if (broker->cluster_ == nullptr) return absl::InternalError("starting the mock cluster failed");
  for (const std::string& topic : {options.topic, options.dlq_topic, options.changelog_topic}) {
    TEND_RETURN_IF_ERROR(FromKafka(
        rd_kafka_mock_topic_create(broker->cluster_, topic.c_str(), options.partitions, 1),
        absl::StrCat("creating topic ", topic)));
  }
  TEND_RETURN_IF_ERROR(broker->CreateTopic(options.membership_topic, 1));
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(broker->cluster_);
  if (options.port != 0) {
    // Forward the stable port to the first broker's listener.
    std::string first = broker->bootstrap_.substr(0, broker->bootstrap_.find(','));
    size_t colon = first.rfind(':');
    int target_port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(first.substr(colon + 1), &target_port)) {
      return absl::InternalError(absl::StrCat("unexpected mock bootstrap address ", first));
    }
    TEND_ASSIGN_OR_RETURN(broker->forwarder_,
                          TcpForwarder::Start(options.port, first.substr(0, colon), target_port));
    broker->bootstrap_ = absl::StrCat("127.0.0.1:", broker->forwarder_->port());
  }
  return broker;
}

MockBroker::~MockBroker() {
  forwarder_.reset();
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
}

absl::Status MockBroker::CreateTopic(const std::string& topic, int partitions) const {
  return FromKafka(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1),
                   absl::StrCat("creating topic ", topic));
}

absl::Status RunBroker(const MockBrokerOptions& options, const std::atomic<bool>& stop,
                       std::ostream& out) {
  TEND_ASSIGN_OR_RETURN(auto broker, MockBroker::Start(options));
  out << broker->bootstrap() << std::endl;
  TEND_LOG_INFO("mock Kafka broker (in memory, ~5 MiB kept per partition; development only) at %s; "
                "topics %s and %s with %d partitions; Ctrl-C stops it",
                broker->bootstrap(), options.topic, options.dlq_topic, options.partitions);
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return absl::OkStatus();
}

}  // namespace tend
