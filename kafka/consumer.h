// The events topic read by a consumer in a group, as a RecordSource: the group assigns the
// partitions (PartitionListener::OnAssigned says where each resumes, from the offset stored with
// the state, or holds it back: not fetched, still this member's), revokes them before they move
// (OnRevoked, which commits), and reports each caught up with its log (OnCaughtUp). Messages are
// freed off the reading thread (message_releaser.h).
#ifndef TEND_KAFKA_CONSUMER_H_
#define TEND_KAFKA_CONSUMER_H_

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kafka/kafka.h"
#include "kafka/message_releaser.h"
#include "kafka/props.h"
#include "kafka/record_source.h"

namespace tend {

// librdkafka properties for a consumer that reads a backlog faster than one fetch brings it: its
// local pre-fetch queue. librdkafka 2.0 (Debian 12's) stops fetching while that queue is over
// `queued.min.messages` or `queued.max.messages.kbytes` (both for the whole consumer queue, all
// partitions together: the partitions' queues forward to it) and sets no timer to look again;
// nothing wakes its broker thread when the application takes messages, so it looks again after
// up to a second (rd_kafka_toppar_fetch_decide, rd_kafka_broker_consumer_serve; its CHANGELOG,
// v2.2.0, on the `fetch.queue.backoff.ms` that fixed it: "it backs off for 1 seconds. If those
// parameters have to be set too high to hold 1 s of data ..."). A queue that holds less than a
// second of what the reader folds leaves it idle for the rest of each second: the engine without
// rules made 236-246k records/s with 200,000 queued and 399-423k with these values, back to back
// (docs/benchmarks.md, "What was really lost"). So: half a million messages or 262,144 kB
// (librdkafka's kilobytes are 1,000 bytes: ~250 MiB of record values), about a second of the
// engine without rules on this machine. This moves the threshold, it does not remove the
// stall: a reader folding more than that per second waits again (librdkafka 2.2's
// `fetch.queue.backoff.ms` would). What the queue costs in memory: docs/design.md ("Memory").
// Callers' own properties come after these and win.
KafkaProps PrefetchProps();

// Not thread-safe, except consumer(), whose handle librdkafka lets any thread use.
class ConsumerSource : public RecordSource {
 public:
  // A consumer of `topic` configured by `props` (bootstrap.servers, group.id and the reader's
  // choices); enable.partition.eof is forced on, since OnCaughtUp rests on it. Offsets are the
  // listener's: the group's committed offsets are never read.
  static absl::StatusOr<std::unique_ptr<ConsumerSource>> Create(const KafkaProps& props,
                                                                std::string topic);
  // Close()s without calling the listener, which may be gone: Close() first to commit on revoke.
  ~ConsumerSource() override;

  // A replay's order, where no one waits for any partition: of the partitions assigned
  // together only the lowest two are fetched, and at the end of one the next is resumed (the
  // others are paused until then), so the reader folds about two partitions' patients at a time
  // (docs/design.md, "Replay partition by partition"). Two, not one: each switch waits for a
  // fetch (librdkafka's fetch waits up to fetch.wait.max.ms at a partition's end), and two at a
  // time halve the switches. A partition whose end was reached stays resumed. Call before
  // Start().
  void set_partitions_in_turn(bool on) { in_turn_ = on; }
  static constexpr int kPartitionsAtATime = 2;

  // Subscribes to the topic; partitions arrive in later Poll()s.
  absl::Status Start(PartitionListener* listener) override;
  // At most kMaxBatch records. An assignment the listener refused, or a stored offset outside
  // the log, is an error; other consumer errors are logged and passed over (librdkafka retries).
  absl::StatusOr<bool> Poll(absl::Duration wait, std::vector<LogRecord>* records) override;
  // Frees every message, then leaves the group: the listener's OnRevoked commits first.
  void Close() override;

  // The latest statistics librdkafka emitted (its JSON, STATISTICS.md of librdkafka; every
  // `statistics.interval.ms` when that property is set; empty before the first or without it).
  // Thread-safe.
  std::string Statistics() const;

  // For commits of the group's offsets (lag monitoring only) and the high watermarks
  // (rd_kafka_get_watermark_offsets, from any thread); lives as long as the source.
  rd_kafka_t* consumer() const { return consumer_.get(); }

  static constexpr int kMaxBatch = 4096;

 private:
  explicit ConsumerSource(std::string topic);
  static void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque);
  // On the polling thread, every statistics.interval.ms: keeps a copy for Statistics().
  static int StatsCb(rd_kafka_t* rk, char* json, size_t json_len, void* opaque);
  void OnAssign(rd_kafka_topic_partition_list_t* parts);
  void OnRevoke(rd_kafka_topic_partition_list_t* parts);
  // Appends the record of `m`, or handles the event it carries; `m` is then held until the next
  // Poll (its views are the record's).
  void Take(rd_kafka_message_t* m, std::vector<LogRecord>* records);
  // Partitions in turn: pauses all of `parts` but the lowest kPartitionsAtATime / resumes the
  // lowest paused one.
  void PauseAllButLowest(const rd_kafka_topic_partition_list_t* parts);
  void ResumeNext();
  void Error(absl::Status s) {
    if (error_.ok()) error_ = std::move(s);
  }

  KafkaHandle consumer_;
  KafkaQueue queue_;
  const std::string topic_;
  PartitionListener* listener_ = nullptr;
  std::map<int32_t, int64_t> assigned_;  // partition -> the offset it was assigned at
  std::vector<rd_kafka_message_t*> batch_ = std::vector<rd_kafka_message_t*>(kMaxBatch);
  std::vector<rd_kafka_message_t*> held_;  // messages of the last Poll
  std::vector<int32_t> caught_up_;  // partitions whose end the last Poll reached
  bool in_turn_ = false;
  std::vector<int32_t> reading_;    // in turn: the partitions fetched, not at their end
  std::vector<int32_t> paused_;     // in turn: the partitions after them, highest first
  absl::Status error_;  // from a callback, returned by Poll
  bool closed_ = false;
  mutable absl::Mutex statistics_mu_;
  std::string statistics_ ABSL_GUARDED_BY(statistics_mu_);
  MessageReleaser releaser_;  // last: destroyed (joined) first, after Close() drained it
};

}  // namespace tend

#endif  // TEND_KAFKA_CONSUMER_H_
