// observe/health.h JudgeReadiness: when an engine serves.
#include "observe/health.h"

#include <catch2/catch.hpp>

namespace tend {
namespace {

PartitionStats Partition(int32_t partition, int64_t next_offset, int64_t high_watermark) {
  PartitionStats p;
  p.partition = partition;
  p.next_offset = next_offset;
  p.high_watermark = high_watermark;
  return p;
}

TEST_CASE("an engine serves once it has partitions and each is within the lag allowed") {
  EngineStats stats;
  CHECK_FALSE(JudgeReadiness(stats, 100).serving);
  CHECK(JudgeReadiness(stats, 100).why == "no partitions assigned");

  stats.partitions = {Partition(0, 500, 600), Partition(1, 40, 40)};
  CHECK(JudgeReadiness(stats, 100).serving);
  CHECK(JudgeReadiness(stats, 100).why.empty());
  // One record more than allowed behind.
  stats.partitions[0].next_offset = 499;
  const Readiness behind = JudgeReadiness(stats, 100);
  CHECK_FALSE(behind.serving);
  CHECK(behind.why == "partition 0 is 101 records behind its log (more than 100)");
  // A partition whose log's end the consumer has not heard yet does not count as caught up.
  stats.partitions = {Partition(0, 0, -1)};
  CHECK_FALSE(JudgeReadiness(stats, 1'000'000).serving);
  // A committed offset past a stale high watermark is no lag.
  stats.partitions = {Partition(0, 700, 600)};
  CHECK(JudgeReadiness(stats, 0).serving);
  // While a partition is restored from the state changelog, the others caught up or not.
  stats.restoring = 3;
  CHECK_FALSE(JudgeReadiness(stats, 0).serving);
  CHECK(JudgeReadiness(stats, 0).why == "restoring partition 3 from the state changelog");
}

TEST_CASE("an engine holding a refused partition does not serve, whatever the others' lag") {
  EngineStats stats;
  stats.partitions = {Partition(0, 40, 40), Partition(2, 7, 7)};
  REQUIRE(JudgeReadiness(stats, 0).serving);
  stats.refused = {{1, "DATA_LOSS: a malformed record"}};
  CHECK_FALSE(JudgeReadiness(stats, 0).serving);
  CHECK(JudgeReadiness(stats, 0).why == "partition 1 is refused: DATA_LOSS: a malformed record");
  stats.refused.push_back({3, "RESOURCE_EXHAUSTED: too many records"});
  CHECK(JudgeReadiness(stats, 0).why ==
        "partition 1 is refused (and 1 more): DATA_LOSS: a malformed record");
  // Refused with nothing else assigned: the refusal is what the operator needs to read.
  stats.partitions.clear();
  CHECK(JudgeReadiness(stats, 0).why.rfind("partition 1 is refused", 0) == 0);
}

}  // namespace
}  // namespace tend
