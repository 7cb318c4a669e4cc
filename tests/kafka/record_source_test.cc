// The record sources the engine's one loop reads: the sequential adapter (archives, memory) and
// a consumer in a group against librdkafka's mock cluster - assignment at the listener's
// offsets, caught-up reports, the DLQ's message handle, revoke on close, and the errors that
// must stop the engine.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "dev/mock_broker.h"
#include "kafka/consumer.h"
#include "kafka/kafka.h"
#include "kafka/record_source.h"

namespace tend {
namespace {

// Records the listener's calls; assigns each partition at `from[partition]` (0 if absent).
class Recorder : public PartitionListener {
 public:
  absl::StatusOr<int64_t> OnAssigned(int32_t partition) override {
    assigned.push_back(partition);
    if (refuse || partition == refuse_partition) {
      return absl::DataLossError("checkpoint unreadable");
    }
    if (partition == hold_partition) return kPartitionHeld;
    return from[partition];
  }
  void OnRevoked(absl::Span<const int32_t> partitions) override {
    revoked.insert(revoked.end(), partitions.begin(), partitions.end());
  }
  void OnCaughtUp(int32_t partition) override { caught_up[partition] = true; }

  std::map<int32_t, int64_t> from;
  bool refuse = false;          // every partition
  int32_t refuse_partition = -1;  // this one only
  int32_t hold_partition = -1;    // this one held back (kPartitionHeld)
  std::vector<int32_t> assigned, revoked;
  std::map<int32_t, bool> caught_up;
};

class Memory : public SequentialSource {
 public:
  explicit Memory(std::vector<std::pair<int32_t, int64_t>> records) : records_(std::move(records)) {}
  // Next() fails instead of returning the record at `position` (a damaged archive).
  void FailAt(size_t position) { fail_at_ = position; }
  int calls_after_end = 0;

 protected:
  absl::StatusOr<bool> Next(LogRecord* r) override {
    if (next_ == fail_at_) return absl::DataLossError("damaged");
    if (next_ == records_.size()) {
      ++calls_after_end;
      return false;
    }
    r->partition = records_[next_].first;
    r->offset = records_[next_].second;
    r->timestamp_ms = static_cast<int64_t>(next_);  // which read returned it
    ++next_;
    return true;
  }

 private:
  std::vector<std::pair<int32_t, int64_t>> records_;
  size_t next_ = 0;
  size_t fail_at_ = SIZE_MAX;
};

// Offsets 0..n-1 of partition 0.
std::vector<std::pair<int32_t, int64_t>> Offsets(int n) {
  std::vector<std::pair<int32_t, int64_t>> records;
  for (int o = 0; o < n; ++o) records.emplace_back(0, o);
  return records;
}

// Polls `source` (started) to its end: every batch, in order. The end leaves no records.
std::vector<std::vector<LogRecord>> Batches(SequentialSource* source) {
  std::vector<std::vector<LogRecord>> batches;
  std::vector<LogRecord> batch;
  for (;;) {
    auto more = source->Poll(absl::ZeroDuration(), &batch);
    REQUIRE(more.ok());
    if (!*more) break;
    batches.push_back(batch);
  }
  CHECK(batch.empty());
  return batches;
}

// The batch's offsets.
std::vector<int64_t> OffsetsOf(const std::vector<LogRecord>& batch) {
  std::vector<int64_t> offsets;
  for (const LogRecord& r : batch) offsets.push_back(r.offset);
  return offsets;
}

TEST_CASE("a sequential source assigns each partition once and resumes at its offset") {
  Memory source({{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}});
  Recorder listener;
  listener.from[0] = 2;  // this directory folded offsets 0 and 1 of partition 0
  REQUIRE(source.Start(&listener).ok());
  std::vector<std::pair<int32_t, int64_t>> read;
  for (const auto& batch : Batches(&source)) {
    for (const LogRecord& r : batch) read.emplace_back(r.partition, r.offset);
  }
  CHECK(listener.assigned == std::vector<int32_t>{0, 1});
  CHECK(read == std::vector<std::pair<int32_t, int64_t>>{{1, 0}, {1, 1}, {0, 2}, {1, 2}});
}

TEST_CASE("a sequential source serving a range of partitions passes over the others' records and "
          "assigns only its own, ends at the first record past it when partitions come in order, "
          "and goes back to its reader after kMaxPassedOver records passed over") {
  // Partition by partition: 0, 1, 2, 3, with partition 0 longer than kMaxPassedOver.
  const int64_t long_run = SequentialSource::kMaxPassedOver + 10;
  std::vector<std::pair<int32_t, int64_t>> records;
  for (int64_t o = 0; o < long_run; ++o) records.emplace_back(0, o);
  for (int32_t p = 1; p <= 3; ++p) {
    for (int64_t o = 0; o < 5; ++o) records.emplace_back(p, o);
  }
  auto read = [](Memory* source, Recorder* listener, int* empty_polls) {
    REQUIRE(source->Start(listener).ok());
    std::vector<std::pair<int32_t, int64_t>> out;
    for (const auto& batch : Batches(source)) {
      if (batch.empty()) ++*empty_polls;
      for (const LogRecord& r : batch) out.emplace_back(r.partition, r.offset);
    }
    return out;
  };
  std::vector<std::pair<int32_t, int64_t>> want;
  for (int32_t p = 1; p <= 2; ++p) {
    for (int64_t o = 0; o < 5; ++o) want.emplace_back(p, o);
  }

  SECTION("in order: partitions 1 and 2, and nothing of 3 is read") {
    Memory source(records);
    source.ServeOnly(1, 2, /*ascending=*/true);
    Recorder listener;
    int empty_polls = 0;
    CHECK(read(&source, &listener, &empty_polls) == want);
    CHECK(listener.assigned == std::vector<int32_t>{1, 2});
    CHECK(empty_polls == 1);  // partition 0's run is longer than one poll passes over
    CHECK(source.calls_after_end == 0);  // ended at partition 3's first record, not the file's end
  }
  SECTION("not in order: the same records, read to the end") {
    Memory source(records);
    source.ServeOnly(1, 2, /*ascending=*/false);
    Recorder listener;
    int empty_polls = 0;
    CHECK(read(&source, &listener, &empty_polls) == want);
    CHECK(listener.assigned == std::vector<int32_t>{1, 2});
    CHECK(source.calls_after_end == 1);
  }
}

TEST_CASE("a sequential source reads in batches of at most kBatch records, and ends once") {
  const int n = 2 * SequentialSource::kBatch + 10;
  Memory source(Offsets(n));
  Recorder listener;
  REQUIRE(source.Start(&listener).ok());
  std::vector<size_t> sizes;
  int64_t next = 0;
  for (const auto& batch : Batches(&source)) {
    sizes.push_back(batch.size());
    for (const LogRecord& r : batch) CHECK(r.offset == next++);
  }
  CHECK(next == n);
  CHECK(sizes == std::vector<size_t>{SequentialSource::kBatch, SequentialSource::kBatch, 10});
  std::vector<LogRecord> batch;
  // Past the end: no more records, and the sequence is not read again.
  auto again = source.Poll(absl::ZeroDuration(), &batch);
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(source.calls_after_end == 1);
}

TEST_CASE("a sequential source reads at most kBatch records from a batch's first to its last, "
          "skipped ones included") {
  // Two partitions interleaved; partition 0 resumes at 150, so its first 150 records are read and
  // skipped, then the two alternate, kept and skipped: a batch's views must outlive every read
  // after its first record (an archive reuses a ring of kBatch records).
  std::vector<std::pair<int32_t, int64_t>> records;
  for (int64_t o = 0; o < 300; ++o) {
    records.emplace_back(0, o);
    if (o >= 200) records.emplace_back(1, o - 200);
  }
  Memory source(records);
  Recorder listener;
  listener.from[0] = 150;
  listener.from[1] = 50;
  REQUIRE(source.Start(&listener).ok());
  size_t kept = 0;
  for (const auto& batch : Batches(&source)) {
    REQUIRE_FALSE(batch.empty());
    CHECK(batch.back().timestamp_ms - batch.front().timestamp_ms < SequentialSource::kBatch);
    kept += batch.size();
  }
  CHECK(kept == 150 + 50);
}

TEST_CASE("a sequential source returns the records before a damaged one, then the error") {
  const int damaged = SequentialSource::kBatch + 6;
  Memory source(Offsets(damaged + 30));
  source.FailAt(damaged);
  Recorder listener;
  REQUIRE(source.Start(&listener).ok());
  std::vector<LogRecord> batch;
  auto first = source.Poll(absl::ZeroDuration(), &batch);
  REQUIRE(first.ok());
  CHECK(batch.size() == static_cast<size_t>(SequentialSource::kBatch));
  auto second = source.Poll(absl::ZeroDuration(), &batch);
  REQUIRE(second.ok());
  CHECK(*second);
  std::vector<int64_t> rest;
  for (int64_t o = SequentialSource::kBatch; o < damaged; ++o) rest.push_back(o);
  CHECK(OffsetsOf(batch) == rest);
  auto third = source.Poll(absl::ZeroDuration(), &batch);
  CHECK(third.status().code() == absl::StatusCode::kDataLoss);
  CHECK(batch.empty());
}

TEST_CASE("a sequential source returns a batch's records before a refused assignment, then "
          "the error") {
  Memory source({{0, 0}, {0, 1}, {1, 0}, {0, 2}});
  Recorder listener;
  listener.refuse_partition = 1;
  REQUIRE(source.Start(&listener).ok());
  std::vector<LogRecord> batch;
  auto first = source.Poll(absl::ZeroDuration(), &batch);
  REQUIRE(first.ok());
  CHECK(*first);
  CHECK(OffsetsOf(batch) == std::vector<int64_t>{0, 1});
  auto second = source.Poll(absl::ZeroDuration(), &batch);
  CHECK(second.status().code() == absl::StatusCode::kDataLoss);
  CHECK(batch.empty());
}

TEST_CASE("a sequential source stops on a partition its listener holds back: it has no group to "
          "keep it from") {
  Memory source({{0, 0}, {1, 0}});
  Recorder listener;
  listener.hold_partition = 1;
  REQUIRE(source.Start(&listener).ok());
  std::vector<LogRecord> batch;
  auto more = source.Poll(absl::ZeroDuration(), &batch);
  REQUIRE(more.ok());
  REQUIRE(batch.size() == 1);  // partition 0's record, before the hold
  more = source.Poll(absl::ZeroDuration(), &batch);
  CHECK(more.status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a sequential source stops on an assignment its listener refuses") {
  Memory source({{0, 0}});
  Recorder listener;
  listener.refuse = true;
  REQUIRE(source.Start(&listener).ok());
  std::vector<LogRecord> batch;
  auto more = source.Poll(absl::ZeroDuration(), &batch);
  CHECK(more.status().code() == absl::StatusCode::kDataLoss);
}

// A broker with two partitions holding three records each (keys "p<partition>-<offset>").
std::unique_ptr<MockBroker> BrokerWithRecords() {
  auto broker = MockBroker::Start(MockBrokerOptions{.partitions = 2});
  REQUIRE(broker.ok());
  auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
  REQUIRE(producer.ok());
  const KafkaHeader header{"origin", "test"};
  for (int32_t p = 0; p < 2; ++p) {
    for (int o = 0; o < 3; ++o) {
      const std::string key = "p" + std::to_string(p) + "-" + std::to_string(o);
      REQUIRE((*producer)->Produce(MockBrokerOptions().topic, p, key, "value", {&header, 1},
                                   nullptr).ok());
    }
  }
  REQUIRE((*producer)->Flush(absl::Seconds(10)).ok());
  return *std::move(broker);
}

std::unique_ptr<ConsumerSource> Consumer(const MockBroker& broker) {
  auto source = ConsumerSource::Create({{"bootstrap.servers", broker.bootstrap()},
                                        {"group.id", "record-source-test"},
                                        {"enable.auto.commit", "false"},
                                        {"auto.offset.reset", "error"}},
                                       MockBrokerOptions().topic);
  REQUIRE(source.ok());
  return *std::move(source);
}

// Polls until the source fails (at most 20 s); every batch before it must be empty.
absl::Status FirstError(ConsumerSource* source) {
  std::vector<LogRecord> batch;
  for (int i = 0; i < 200; ++i) {
    auto more = source->Poll(absl::Milliseconds(100), &batch);
    if (!more.ok()) return more.status();
    CHECK(batch.empty());
  }
  return absl::OkStatus();
}

TEST_CASE("a consumer source reads its group's partitions from the listener's offsets") {
  auto broker = BrokerWithRecords();
  Recorder listener;  // outlives the source, which calls it until closed
  auto source = Consumer(*broker);
  listener.from[0] = 1;  // partition 0 resumes at offset 1; partition 1 from its start
  REQUIRE(source->Start(&listener).ok());
  std::vector<std::string> keys;
  std::vector<LogRecord> batch;
  for (int i = 0; i < 200 && !(listener.caught_up[0] && listener.caught_up[1]); ++i) {
    auto more = source->Poll(absl::Milliseconds(100), &batch);
    REQUIRE(more.ok());
    CHECK(*more);  // a consumer never ends
    for (const LogRecord& r : batch) {
      CHECK(r.key == "p" + std::to_string(r.partition) + "-" + std::to_string(r.offset));
      CHECK(r.value == "value");
      CHECK(r.timestamp_ms > 0);
      CHECK(r.message != nullptr);  // the dead letter copies its headers
      keys.emplace_back(r.key);
    }
  }
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"p0-1", "p0-2", "p1-0", "p1-1", "p1-2"});
  std::sort(listener.assigned.begin(), listener.assigned.end());
  CHECK(listener.assigned == std::vector<int32_t>{0, 1});
  CHECK(listener.revoked.empty());
  source->Close();  // leaving the group revokes, so the listener commits first
  std::sort(listener.revoked.begin(), listener.revoked.end());
  CHECK(listener.revoked == std::vector<int32_t>{0, 1});
}

TEST_CASE("a consumer source in a replay's order reads two partitions at a time, lowest "
          "first, each from the listener's offset",
          "[integration]") {
  constexpr int kPartitions = 4, kPerPartition = 400;
  auto broker = MockBroker::Start(MockBrokerOptions{.partitions = kPartitions});
  REQUIRE(broker.ok());
  {
    auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
    REQUIRE(producer.ok());
    // Round robin over the partitions, as a live topic fills them.
    for (int o = 0; o < kPerPartition; ++o) {
      for (int32_t p = 0; p < kPartitions; ++p) {
        const std::string key = "p" + std::to_string(p) + "-" + std::to_string(o);
        REQUIRE((*producer)->Produce(MockBrokerOptions().topic, p, key, "value", {}, nullptr).ok());
      }
    }
    REQUIRE((*producer)->Flush(absl::Seconds(10)).ok());
  }
  Recorder listener;  // outlives the source, which calls it until closed
  auto source = Consumer(**broker);
  source->set_partitions_in_turn(true);
  listener.from[2] = 150;  // partition 2 resumes at offset 150; the others from their start
  REQUIRE(source->Start(&listener).ok());
  std::map<int32_t, int64_t> next;  // per partition: the offset the next record must have
  next[2] = 150;
  std::vector<LogRecord> batch;
  auto all_caught_up = [&] {
    for (int32_t p = 0; p < kPartitions; ++p) {
      if (!listener.caught_up[p]) return false;
    }
    return true;
  };
  for (int i = 0; i < 400 && !all_caught_up(); ++i) {
    auto more = source->Poll(absl::Milliseconds(50), &batch);
    REQUIRE(more.ok());
    for (const LogRecord& r : batch) {
      // At most one partition below it is not at its end yet: two are read at a time, and a
      // partition is resumed only after every one below it.
      static_assert(ConsumerSource::kPartitionsAtATime == 2);
      int unfinished_below = 0;
      for (int32_t below = 0; below < r.partition; ++below) {
        unfinished_below += next[below] < kPerPartition;
      }
      INFO("a record of partition " << r.partition << " while " << unfinished_below
                                    << " partitions below it are not at their end");
      REQUIRE(unfinished_below <= 1);
      REQUIRE(r.offset == next[r.partition]);  // each record once, in log order
      ++next[r.partition];
    }
  }
  CHECK(all_caught_up());
  for (int32_t p = 0; p < kPartitions; ++p) CHECK(next[p] == kPerPartition);
  source->Close();
}

TEST_CASE("a consumer source stops when a stored offset is outside the log") {
  auto broker = BrokerWithRecords();
  Recorder listener;  // outlives the source, which calls it until closed
  auto source = Consumer(*broker);
  listener.from[0] = 100;
  listener.from[1] = 100;
  REQUIRE(source->Start(&listener).ok());
  const absl::Status error = FirstError(source.get());
  CHECK(error.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(error.message()),
             Catch::Contains("the offset stored with the state (100) is outside the log"));
}

TEST_CASE("a consumer source does not fetch a partition its listener holds back, and keeps it "
          "in the group") {
  auto broker = BrokerWithRecords();
  Recorder listener;  // outlives the source, which calls it until closed
  auto source = Consumer(*broker);
  listener.hold_partition = 1;
  REQUIRE(source->Start(&listener).ok());
  std::vector<std::string> keys;
  std::vector<LogRecord> batch;
  // Partition 0 to its end, then a second more: nothing of partition 1 comes.
  absl::Time until = absl::InfiniteFuture();
  for (int i = 0; i < 200 && absl::Now() < until; ++i) {
    auto more = source->Poll(absl::Milliseconds(100), &batch);
    REQUIRE(more.ok());
    for (const LogRecord& r : batch) keys.emplace_back(r.key);
    if (listener.caught_up[0] && until == absl::InfiniteFuture()) {
      until = absl::Now() + absl::Seconds(1);
    }
  }
  CHECK(listener.caught_up[0]);
  CHECK_FALSE(listener.caught_up[1]);
  CHECK(keys == std::vector<std::string>{"p0-0", "p0-1", "p0-2"});
  std::sort(listener.assigned.begin(), listener.assigned.end());
  CHECK(listener.assigned == std::vector<int32_t>{0, 1});
  // The group's assignment still holds it: leaving revokes both.
  source->Close();
  std::sort(listener.revoked.begin(), listener.revoked.end());
  CHECK(listener.revoked == std::vector<int32_t>{0, 1});
}

TEST_CASE("a consumer source stops on an assignment its listener refuses") {
  auto broker = BrokerWithRecords();
  Recorder listener;  // outlives the source, which calls it until closed
  auto source = Consumer(*broker);
  listener.refuse = true;
  REQUIRE(source->Start(&listener).ok());
  CHECK(FirstError(source.get()).code() == absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace tend
