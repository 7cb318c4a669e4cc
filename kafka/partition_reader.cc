#include "kafka/partition_reader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace tend {

ReadRecord ReadRecord::Of(const rd_kafka_message_t* m) {
  ReadRecord r;
  r.offset = m->offset;
  r.key = absl::string_view(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
  if (m->payload != nullptr) {
    r.value = absl::string_view(static_cast<const char*>(m->payload), m->len);
  }
  r.message = m;
  return r;
}

std::optional<absl::string_view> ReadRecord::Header(const char* name) const {
  rd_kafka_headers_t* headers = nullptr;
  if (message == nullptr ||
      rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  return absl::string_view(static_cast<const char*>(value), value != nullptr ? size : 0);
}

absl::StatusOr<std::unique_ptr<PartitionReader>> PartitionReader::Create(const KafkaProps& props) {
  // librdkafka's consumer queue needs a group.id; it is never joined (assign, not subscribe) and
  // nothing is committed to it.
  KafkaProps all = {{"group.id", "tend-partition-reader"},
                    {"enable.partition.eof", "true"},
                    // The read ends at a known offset: no fetch waits for more to arrive (the
                    // default 500 ms per partition made a restore of 32 small partitions 16 s).
                    {"fetch.wait.max.ms", "10"},
                    {"enable.auto.commit", "false"},
                    {"enable.auto.offset.store", "false"},
                    // An offset no longer in the log is an error, not a silent jump.
                    {"auto.offset.reset", "error"}};
  all.insert(all.end(), props.begin(), props.end());
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf(all));
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err));
  if (rk == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("creating a partition reader: ", err));
  }
  conf.release();  // rd_kafka_new took ownership
  rd_kafka_poll_set_consumer(rk);
  return std::unique_ptr<PartitionReader>(new PartitionReader(KafkaHandle(rk)));
}

absl::StatusOr<PartitionOffsets> PartitionReader::Watermarks(const std::string& topic,
                                                             int32_t partition,
                                                             absl::Duration timeout) {
  PartitionOffsets o;
  TEND_RETURN_IF_ERROR(FromKafka(
      rd_kafka_query_watermark_offsets(rk_.get(), topic.c_str(), partition, &o.low, &o.high,
                                       static_cast<int>(absl::ToInt64Milliseconds(timeout))),
      absl::StrCat("reading the offsets of ", topic, "[", partition, "]")));
  return o;
}

absl::Status PartitionReader::Read(const std::string& topic, int32_t partition, int64_t from,
                                   int64_t end,
                                   const std::function<absl::Status(const ReadRecord&)>& fn,
                                   absl::Duration stall) {
  if (from >= end) return absl::OkStatus();
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = from;
  TEND_RETURN_IF_ERROR(FromKafka(rd_kafka_assign(rk_.get(), list.get()),
                                 absl::StrCat("reading ", topic, "[", partition, "]")));
  absl::Status status;
  absl::Time last_progress = absl::Now();
  int64_t next = from;
  while (next < end && status.ok()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), 100);
    if (m == nullptr) {
      if (absl::Now() - last_progress > stall) {
        status = absl::UnavailableError(absl::StrCat(
            "reading ", topic, "[", partition, "]: nothing arrived for ",
            absl::FormatDuration(stall), " at offset ", next, " of ", end,
            " (is the broker reachable?)"));
      }
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // At the end: done once it is at `end` (compaction may have removed the offsets before
      // it). An end short of `end` (a new leader not caught up yet) is waited out, up to
      // `stall`.
      if (m->offset >= end) next = end;
    } else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
               m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
      status = absl::DataLossError(absl::StrCat("reading ", topic, "[", partition,
                                                "] from offset ", from, ": ",
                                                rd_kafka_message_errstr(m)));
    } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = FromKafka(m->err, absl::StrCat("reading ", topic, "[", partition, "]: ",
                                              rd_kafka_message_errstr(m)));
    } else if (m->offset >= end) {
      next = end;
    } else {
      status = fn(ReadRecord::Of(m));
      next = m->offset + 1;
      last_progress = absl::Now();
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(rk_.get(), nullptr);
  return status;
}

void PartitionReader::Follow(const std::string& topic, int32_t partition, int64_t from,
                             const std::function<void(const ReadRecord&)>& fn,
                             const std::atomic<bool>& stop,
                             const std::function<void(const absl::Status&)>& on_error,
                             absl::Duration backoff) {
  int64_t next = from;
  while (!stop.load()) {
    KafkaPartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = next;
    absl::Status status = FromKafka(rd_kafka_assign(rk_.get(), list.get()),
                                    absl::StrCat("following ", topic, "[", partition, "]"));
    while (status.ok() && !stop.load()) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), 100);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        fn(ReadRecord::Of(m));
        next = m->offset + 1;
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        status = FromKafka(m->err, absl::StrCat("following ", topic, "[", partition, "]: ",
                                                rd_kafka_message_errstr(m)));
        // An offset no longer in the log: start again from the log's start.
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
          next = RD_KAFKA_OFFSET_BEGINNING;
        }
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk_.get(), nullptr);
    if (!status.ok() && !stop.load()) {
      if (on_error) on_error(status);
      for (absl::Time until = absl::Now() + backoff; !stop.load() && absl::Now() < until;) {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
  }
}

}  // namespace tend
