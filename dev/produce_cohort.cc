#include "dev/produce_cohort.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/time.h"
#include "kafka/archive.h"
#include "kafka/partitioner.h"

namespace tend {

absl::StatusOr<int64_t> SimulateToKafka(const CohortOptions& options, Producer* producer,
                                        const std::string& topic) {
  int64_t produced = 0;
  TEND_RETURN_IF_ERROR(SimulateCohort(options, [&](const v1::Event& e) {
    ++produced;
    return ProduceEvent(producer, topic, e);
  }));
  int64_t failed_before = producer->failed();
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(120)));
  if (producer->failed() != failed_before) {
    return absl::UnavailableError(absl::StrCat(producer->failed() - failed_before,
                                               " records were not acknowledged by the broker"));
  }
  return produced;
}

absl::StatusOr<int64_t> SimulateToArchive(const CohortOptions& options, int partitions,
                                          const std::string& topic, const std::string& path) {
  if (partitions < 1 || partitions > kMaxArchivePartitions) {
    return absl::InvalidArgumentError(
        absl::StrCat("partitions must be within 1..", kMaxArchivePartitions));
  }
  // Where tend's producers would put the patient (murmur2 of the key, kafka/partitioner.h): a
  // directory rebuilt from the archive then holds each patient in the partition that queries
  // are routed to (cluster/router.h) and that its later events in Kafka reach.
  auto partition_of = [&](const std::string& patient) {
    return KafkaPartition(patient, partitions);
  };
  std::vector<int64_t> counts(partitions, 0);
  TEND_RETURN_IF_ERROR(SimulateCohort(options, [&](const v1::Event& e) {
    ++counts[partition_of(e.patient_id())];
    return absl::OkStatus();
  }));
  v1::ArchiveHeader header;
  header.set_topic(topic);
  header.set_partitions(partitions);
  *header.mutable_created_at() = ToProtoTime(absl::Now());
  for (int64_t n : counts) {
    header.add_low_offsets(0);
    header.add_high_offsets(n);
  }
  header.set_partition_major(true);
  TEND_ASSIGN_OR_RETURN(auto writer, ArchiveWriter::Create(path, std::move(header)));
  v1::ArchiveRecord record;
  // One partition's patients at a time: each of them has the events of the whole cohort's run,
  // in the same order (CohortOptions.only).
  for (int32_t partition = 0; partition < partitions; ++partition) {
    if (counts[partition] == 0) continue;
    CohortOptions only = options;
    only.only = [&](const std::string& patient) {
      return partition_of(patient) == partition && (!options.only || options.only(patient));
    };
    int64_t next = 0;
    TEND_RETURN_IF_ERROR(SimulateCohort(only, [&](const v1::Event& e) {
      record.set_partition(partition);
      record.set_offset(next++);
      record.set_key(e.patient_id());
      record.set_value(e.SerializeAsString());
      record.set_timestamp_ms(absl::ToUnixMillis(FromProtoTime(e.recorded_at())));
      return writer->Append(record);
    }));
    if (next != counts[partition]) {
      return absl::InternalError(absl::StrCat("partition ", partition, ": simulated ", next,
                                              " records, counted ", counts[partition]));
    }
  }
  TEND_RETURN_IF_ERROR(writer->Finish());
  return writer->records();
}

}  // namespace tend
