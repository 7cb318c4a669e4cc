#include "kafka/consumer.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"

namespace tend {

KafkaProps PrefetchProps() {
  return {{"queued.min.messages", "500000"},
          {"queued.max.messages.kbytes", "262144"},
          {"fetch.wait.max.ms", "100"}};
}

absl::StatusOr<std::unique_ptr<ConsumerSource>> ConsumerSource::Create(const KafkaProps& props,
                                                                      std::string topic) {
  KafkaProps all = props;
  all.emplace_back("enable.partition.eof", "true");
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf(all));
  auto source = std::unique_ptr<ConsumerSource>(new ConsumerSource(std::move(topic)));
  rd_kafka_conf_set_rebalance_cb(conf.get(), &ConsumerSource::RebalanceCb);
  rd_kafka_conf_set_stats_cb(conf.get(), &ConsumerSource::StatsCb);
  rd_kafka_conf_set_opaque(conf.get(), source.get());  // how the callback finds the source
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err));
  if (rk == nullptr) return absl::InvalidArgumentError(absl::StrCat("creating consumer: ", err));
  conf.release();  // owned by rk now
  source->consumer_.reset(rk);
  rd_kafka_poll_set_consumer(rk);
  source->queue_.reset(rd_kafka_queue_get_consumer(rk));
  return source;
}

ConsumerSource::ConsumerSource(std::string topic) : topic_(std::move(topic)) {
  held_.reserve(kMaxBatch);
}

ConsumerSource::~ConsumerSource() {
  // The listener may be gone already: leaving the group from here tells it nothing.
  listener_ = nullptr;
  Close();
}

absl::Status ConsumerSource::Start(PartitionListener* listener) {
  listener_ = listener;
  KafkaPartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), topic_.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t e = rd_kafka_subscribe(consumer_.get(), topics.get());
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return FromKafka(e, absl::StrCat("subscribing to ", topic_));
  }
  return absl::OkStatus();
}

void ConsumerSource::RebalanceCb(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                                 rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* self = static_cast<ConsumerSource*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->OnAssign(parts);
  } else {
    self->OnRevoke(parts);
  }
}

int ConsumerSource::StatsCb(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<ConsumerSource*>(opaque);
  absl::MutexLock lock(&self->statistics_mu_);
  self->statistics_.assign(json, json_len);
  return 0;  // librdkafka frees `json`
}

std::string ConsumerSource::Statistics() const {
  absl::MutexLock lock(&statistics_mu_);
  return statistics_;
}

void ConsumerSource::OnAssign(rd_kafka_topic_partition_list_t* parts) {
  if (listener_ == nullptr) {  // closing from the destructor
    rd_kafka_assign(consumer_.get(), nullptr);
    return;
  }
  // What is fetched: the group's assignment but the partitions the listener holds back.
  KafkaPartitionList fetched(rd_kafka_topic_partition_list_new(parts->cnt));
  for (int i = 0; i < parts->cnt; ++i) {
    const auto& tp = parts->elems[i];
    absl::StatusOr<int64_t> from = listener_->OnAssigned(tp.partition);
    if (!from.ok()) {
      Error(from.status());
      rd_kafka_assign(consumer_.get(), nullptr);
      return;
    }
    if (*from == PartitionListener::kPartitionHeld) continue;
    rd_kafka_topic_partition_list_add(fetched.get(), tp.topic, tp.partition)->offset =
        *from > 0 ? *from : RD_KAFKA_OFFSET_BEGINNING;
    assigned_[tp.partition] = *from;
  }
  if (fetched->cnt == parts->cnt) {
    TEND_LOG_INFO("assigned %d partitions of %s; resuming at the offsets stored with the state",
                  parts->cnt, topic_);
  } else {
    TEND_LOG_INFO("assigned %d partitions of %s, %d of them held back; resuming at the offsets "
                  "stored with the state", parts->cnt, topic_, parts->cnt - fetched->cnt);
  }
  if (rd_kafka_resp_err_t e = rd_kafka_assign(consumer_.get(), fetched.get());
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Error(FromKafka(e, "assigning partitions"));
    return;
  }
  if (in_turn_) PauseAllButLowest(fetched.get());
}

void ConsumerSource::PauseAllButLowest(const rd_kafka_topic_partition_list_t* parts) {
  paused_.clear();
  reading_.clear();
  for (int i = 0; i < parts->cnt; ++i) paused_.push_back(parts->elems[i].partition);
  std::sort(paused_.begin(), paused_.end(), std::greater<>());
  while (!paused_.empty() && reading_.size() < kPartitionsAtATime) {
    reading_.push_back(paused_.back());
    paused_.pop_back();
  }
  if (paused_.empty()) return;
  KafkaPartitionList pause(rd_kafka_topic_partition_list_new(static_cast<int>(paused_.size())));
  for (int32_t p : paused_) rd_kafka_topic_partition_list_add(pause.get(), topic_.c_str(), p);
  if (rd_kafka_resp_err_t e = rd_kafka_pause_partitions(consumer_.get(), pause.get());
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Error(FromKafka(e, "pausing partitions to read them in turn"));
  }
}

void ConsumerSource::ResumeNext() {
  if (paused_.empty()) return;
  const int32_t next = paused_.back();
  paused_.pop_back();
  reading_.push_back(next);
  KafkaPartitionList resume(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(resume.get(), topic_.c_str(), next);
  if (rd_kafka_resp_err_t e = rd_kafka_resume_partitions(consumer_.get(), resume.get());
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Error(FromKafka(e, absl::StrCat("resuming partition ", next)));
  }
}

void ConsumerSource::OnRevoke(rd_kafka_topic_partition_list_t* parts) {
  std::vector<int32_t> revoked;
  revoked.reserve(static_cast<size_t>(parts->cnt));
  for (int i = 0; i < parts->cnt; ++i) {
    revoked.push_back(parts->elems[i].partition);
    assigned_.erase(parts->elems[i].partition);
  }
  // An assignment is revoked whole (eager rebalancing) and the next one pauses anew. librdkafka
  // keeps an application's pause across an unassign and a later assign: resume what is paused,
  // or a partition assigned again among the lowest two would never be fetched.
  if (!paused_.empty()) {
    KafkaPartitionList resume(rd_kafka_topic_partition_list_new(static_cast<int>(paused_.size())));
    for (int32_t p : paused_) rd_kafka_topic_partition_list_add(resume.get(), topic_.c_str(), p);
    rd_kafka_resume_partitions(consumer_.get(), resume.get());  // leaving them: errors moot
  }
  paused_.clear();
  reading_.clear();
  if (listener_ != nullptr) listener_->OnRevoked(revoked);
  TEND_LOG_INFO("revoked %d partitions", parts->cnt);
  rd_kafka_assign(consumer_.get(), nullptr);
}

void ConsumerSource::Take(rd_kafka_message_t* m, std::vector<LogRecord>* records) {
  held_.push_back(m);
  switch (m->err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: {
      LogRecord& r = records->emplace_back();
      r.partition = m->partition;
      r.offset = m->offset;
      r.key = absl::string_view(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
      r.value = absl::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
      r.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
      r.message = m;
      // An end reached earlier in this batch is no longer the end.
      if (!caught_up_.empty()) {
        caught_up_.erase(std::remove(caught_up_.begin(), caught_up_.end(), m->partition),
                         caught_up_.end());
      }
      break;
    }
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
      // Reported at the next Poll, once the reader has folded the records before it.
      caught_up_.push_back(m->partition);
      if (auto it = std::find(reading_.begin(), reading_.end(), m->partition);
          it != reading_.end()) {
        reading_.erase(it);
        ResumeNext();
      }
      break;
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET: {
      auto it = assigned_.find(m->partition);
      Error(absl::FailedPreconditionError(absl::StrCat(
          topic_, "[", m->partition, "]: the offset stored with the state (",
          it == assigned_.end() ? -1 : it->second, ") is outside the log: ",
          rd_kafka_message_errstr(m),
          ". Records were deleted before they were folded, or the topic was recreated; rebuild "
          "into a new --db directory from a complete log")));
      break;
    }
    default:
      TEND_LOG_WARN("consumer: %s", rd_kafka_message_errstr(m));
  }
}

absl::StatusOr<bool> ConsumerSource::Poll(absl::Duration wait, std::vector<LogRecord>* records) {
  records->clear();
  // The last batch is folded: nothing refers to its messages any more.
  if (!held_.empty()) releaser_.Release(&held_);
  for (int32_t partition : caught_up_) listener_->OnCaughtUp(partition);
  caught_up_.clear();
  if (!error_.ok()) return error_;
  // Whatever is queued locally, without waiting (a batch read with a timeout would wait for a
  // whole batch)...
  ssize_t n = rd_kafka_consume_batch_queue(queue_.get(), 0, batch_.data(), batch_.size());
  for (ssize_t i = 0; i < n; ++i) Take(batch_[static_cast<size_t>(i)], records);
  if (n <= 0 && wait > absl::ZeroDuration()) {
    // ...else the next message, waiting for it at most `wait`.
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(
            consumer_.get(), static_cast<int>(absl::ToInt64Milliseconds(wait)))) {
      Take(m, records);
    }
  }
  if (!error_.ok()) return error_;
  return true;
}

void ConsumerSource::Close() {
  if (closed_ || consumer_ == nullptr) return;
  closed_ = true;
  if (!held_.empty()) releaser_.Release(&held_);
  releaser_.Drain();  // no message may outlive the consumer
  // Leaves the group: the revoke callback runs here, and the listener commits.
  rd_kafka_consumer_close(consumer_.get());
}

}  // namespace tend
