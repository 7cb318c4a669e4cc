#include "kafka/kafka.h"


#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file.h"
#include "base/status.h"
#include "base/thread_name.h"

namespace tend {

absl::StatusOr<KafkaConf> MakeKafkaConf(const KafkaProps& props) {
  KafkaConf conf(rd_kafka_conf_new());
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      // The value is not repeated: it may be a password (sasl.password, ssl.key.password).
      // librdkafka's own text may quote it ("Invalid value \"...\""): cut before the quote.
      absl::string_view why(err);
      why = why.substr(0, why.find('"'));
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", k, " refused: ",
                                                     absl::StripTrailingAsciiWhitespace(why)));
    }
  }
  return conf;
}

absl::Status ParseKafkaProp(absl::string_view kv, KafkaProps* props) {
  size_t eq = kv.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kafka takes KEY=VALUE (a librdkafka property), got \"", kv, "\""));
  }
  props->emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  return absl::OkStatus();
}

absl::Status ReadKafkaConfigFile(const std::string& path, KafkaProps* props) {
  constexpr int64_t kMaxBytes = 64 << 10;
  mode_t mode = 0;
  auto text = ReadBoundedFile(path, kMaxBytes, &mode);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("--kafka-config: ", text.status().message()));
  }
  if ((mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "--kafka-config ", path, " may be read by group or others (it may hold a SASL password); "
        "chmod 600 it"));
  }
  int number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const size_t eq = line.find('=');
    const absl::string_view key =
        eq == absl::string_view::npos ? line : absl::StripAsciiWhitespace(line.substr(0, eq));
    const bool key_ok = !key.empty() && key.find_first_not_of(
                                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789._-") == absl::string_view::npos;
    if (eq == absl::string_view::npos || !key_ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--kafka-config ", path, " line ", number,
          ": not KEY=VALUE (a librdkafka property; the line is not repeated, it may hold a secret)"));
    }
    props->emplace_back(std::string(key), std::string(absl::StripAsciiWhitespace(line.substr(eq + 1))));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> TopicPartitionCount(rd_kafka_t* rk, absl::string_view topic,
                                        absl::Duration timeout) {
  std::string name(topic);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, name.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk, 0, rkt, &md, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  rd_kafka_topic_destroy(rkt);
  TEND_RETURN_IF_ERROR(FromKafka(err, absl::StrCat("fetching metadata of topic ", topic)));
  int count = -1;
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (name == md->topics[i].topic) {
      count = md->topics[i].partition_cnt;
      topic_err = md->topics[i].err;
    }
  }
  rd_kafka_metadata_destroy(md);
  if (count <= 0 || topic_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::NotFoundError(absl::StrCat("topic ", topic, " does not exist on the brokers (",
                                            rd_kafka_err2str(topic_err),
                                            "); create it, or start `tend broker` for development"));
  }
  return count;
}

absl::StatusOr<std::vector<PartitionOffsets>> TopicWatermarks(rd_kafka_t* rk,
                                                              absl::string_view topic,
                                                              absl::Duration timeout) {
  TEND_ASSIGN_OR_RETURN(int partitions, TopicPartitionCount(rk, topic, timeout));
  const std::string name(topic);
  std::vector<PartitionOffsets> out(static_cast<size_t>(partitions));
  for (int p = 0; p < partitions; ++p) {
    PartitionOffsets& o = out[static_cast<size_t>(p)];
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
        rk, name.c_str(), p, &o.low, &o.high, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    TEND_RETURN_IF_ERROR(FromKafka(e, absl::StrCat("reading the offsets of ", topic, "[", p, "]")));
  }
  return out;
}

namespace {

struct PendingDelivery {
  Producer::DeliveryFn fn;
};

}  // namespace

void Producer::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  auto* pending = static_cast<PendingDelivery*>(msg->_private);
  Delivery d;
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->failed_.fetch_add(1, std::memory_order_relaxed);
    d.status = FromKafka(msg->err, "delivering record");
  } else {
    d.partition = msg->partition;
    d.offset = msg->offset;
  }
  if (pending != nullptr) {
    if (pending->fn) pending->fn(d);
    delete pending;
  }
}

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(const KafkaProps& props) {
  KafkaProps all = {{"enable.idempotence", "true"},
                    {"compression.type", "lz4"},
                    {"partitioner", "murmur2_random"},
                    {"linger.ms", "5"},
                    {"queue.buffering.max.kbytes", "262144"}};
  all.insert(all.end(), props.begin(), props.end());
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf(all));
  auto producer = std::unique_ptr<Producer>(new Producer());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::OnDelivery);
  rd_kafka_conf_set_opaque(conf.get(), producer.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof(err));
  if (rk == nullptr) return absl::InvalidArgumentError(absl::StrCat("creating producer: ", err));
  conf.release();  // rd_kafka_new took ownership
  producer->rk_.reset(rk);
  producer->poller_ = std::thread([p = producer.get()] {
    SetThreadName("tend-kproduce");
    while (!p->stop_.load(std::memory_order_relaxed)) rd_kafka_poll(p->rk_.get(), 50);
  });
  return producer;
}

Producer::~Producer() {
  rd_kafka_flush(rk_.get(), 10'000);
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
  rd_kafka_poll(rk_.get(), 0);  // serve remaining reports so their callbacks are freed
  rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(rk_.get(), 0);
}

absl::Status Producer::Produce(absl::string_view topic, int32_t partition, absl::string_view key,
                               absl::string_view value, std::span<const KafkaHeader> headers,
                               DeliveryFn on_delivery, int64_t timestamp_ms,
                               absl::Time give_up) {
  std::string topic_name(topic);
  auto* pending = on_delivery ? new PendingDelivery{std::move(on_delivery)} : nullptr;
  for (;;) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& h : headers) {
        rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()),
                            h.value.data(), static_cast<ssize_t>(h.value.size()));
      }
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_TOPIC(topic_name.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_TIMESTAMP(timestamp_ms),
        RD_KAFKA_V_OPAQUE(pending), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);  // not taken on failure
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && absl::Now() < give_up) {
      // Backpressure: let the poller drain delivery reports, then retry.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    delete pending;
    return FromKafka(err, absl::StrCat("producing to ", topic));
  }
}

absl::Status Producer::Flush(absl::Duration timeout) {
  rd_kafka_resp_err_t err =
      rd_kafka_flush(rk_.get(), static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    return absl::DeadlineExceededError(absl::StrCat(
        rd_kafka_outq_len(rk_.get()), " records still unacknowledged after ",
        absl::FormatDuration(timeout), " (is the broker reachable?)"));
  }
  return FromKafka(err, "flushing producer");
}

absl::Status FromKafka(rd_kafka_resp_err_t err, absl::string_view what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", rd_kafka_err2str(err), " (", rd_kafka_err2name(err), ")");
  switch (err) {
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return absl::InvalidArgumentError(msg);
    case RD_KAFKA_RESP_ERR__FATAL:
      return absl::InternalError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

absl::Status ProduceEvent(Producer* producer, const std::string& topic, const v1::Event& event,
                          Producer::DeliveryFn on_delivery, absl::Time give_up) {
  std::string value = event.SerializeAsString();
  auto headers = EventHeaders(event);
  const int64_t recorded_ms =
      event.recorded_at().seconds() * 1000 + event.recorded_at().nanos() / 1'000'000;
  return producer->Produce(topic, RD_KAFKA_PARTITION_UA, event.patient_id(), value, headers,
                           std::move(on_delivery), recorded_ms > 0 ? recorded_ms : 0, give_up);
}

}  // namespace tend
