// An archive file (kafka/archive.h) read whole, for tests that check what a writer wrote.
// Header-only: link tend_kafka.
#ifndef TEND_TESTS_ARCHIVE_RECORDS_H_
#define TEND_TESTS_ARCHIVE_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka/archive.h"

namespace tend::testing {

struct ArchiveContents {
  v1::ArchiveHeader header;
  std::vector<v1::ArchiveRecord> records;  // in file order
};

// Every record of the archive at `path`, or the reader's first error.
inline absl::StatusOr<ArchiveContents> ReadArchiveRecords(const std::string& path) {
  auto reader = ArchiveReader::Open(path);
  if (!reader.ok()) return reader.status();
  ArchiveContents contents;
  contents.header = (*reader)->header();
  for (;;) {
    v1::ArchiveRecord r;
    absl::StatusOr<bool> more = (*reader)->Next(&r);
    if (!more.ok()) return more.status();
    if (!*more) return contents;
    contents.records.push_back(std::move(r));
  }
}

// The partitions of `records` in file order, one entry per run of records of one partition.
inline std::vector<int32_t> PartitionRuns(const std::vector<v1::ArchiveRecord>& records) {
  std::vector<int32_t> runs;
  for (const v1::ArchiveRecord& r : records) {
    if (runs.empty() || runs.back() != r.partition()) runs.push_back(r.partition());
  }
  return runs;
}

}  // namespace tend::testing

#endif  // TEND_TESTS_ARCHIVE_RECORDS_H_
