#include "kafka/dead_letter.h"

#include <string>
#include <vector>

namespace tend {

absl::Status ProduceDeadLetter(Producer* producer, absl::string_view dlq_topic,
                               absl::string_view source_topic, const LogRecord& record,
                               absl::string_view reason) {
  const std::string partition = std::to_string(record.partition);
  const std::string offset = std::to_string(record.offset);
  std::vector<KafkaHeader> headers = {{"dlq.reason", reason},
                                      {"dlq.source.topic", source_topic},
                                      {"dlq.source.partition", partition},
                                      {"dlq.source.offset", offset}};
  rd_kafka_headers_t* original = nullptr;
  if (record.message != nullptr &&
      rd_kafka_message_headers(record.message, &original) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* val;
    size_t size;
    for (size_t i = 0;
         rd_kafka_header_get_all(original, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      headers.push_back({name, absl::string_view(static_cast<const char*>(val), val ? size : 0)});
    }
  }
  return producer->Produce(dlq_topic, RD_KAFKA_PARTITION_UA, record.key, record.value, headers,
                           nullptr);
}

}  // namespace tend
