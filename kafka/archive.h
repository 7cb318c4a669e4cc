// Archive files: the events topic exported to one file (`tend archive`), read back by
// `tend replay --archive` when Kafka no longer holds the whole history (a topic with finite
// retention, or the dev broker, which keeps ~5 MiB per partition).
//
// Format version 1 (on-disk: change only with a new version number):
//   "TENDARC\n"                       8 bytes of magic
//   frame*                            each: u32 little-endian length N, N bytes of a serialized
//                                     tend.v1.ArchiveFrame, u32 little-endian CRC-32C of those
//                                     N bytes
// A frame is at most kMaxArchiveFrame bytes (64 MiB): a writer refuses a record that would not
// fit (which no reader would read back), a reader such a frame. (A record may be far larger than
// the brokers' `message.max.bytes`, which bounds a compressed batch.)
// The first frame is the header (ArchiveHeader, format_version 1), then one record frame per
// Kafka record (ArchiveRecord: partition, offset, key, value — the serialized Event — and
// timestamp), in log order within each partition, and last an end frame (ArchiveEnd) with the
// number of records. A header with `partition_major` (tend's writers set it) promises the
// records partition by partition: all of the lowest partition's first, then the next; the engine
// then folds one partition's patients at a time, and its cache holds them (docs/design.md,
// "Replay partition by partition"). Without it, partitions may interleave. A reader refuses a
// file whose magic, version, checksums or end frame are wrong or missing, or whose records fall
// outside the partitions and offset ranges its header declares, go backwards within a
// partition, or (under `partition_major`) back to a lower partition, naming the byte position
// and the record number.
//
// A writer writes FILE.partial and renames it to FILE in Finish(): an archive that exists is
// complete. Thread safety: writers and readers are single-threaded objects.
#ifndef TEND_KAFKA_ARCHIVE_H_
#define TEND_KAFKA_ARCHIVE_H_

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kafka/record_source.h"
#include "tend/v1/archive.pb.h"

namespace tend {

inline constexpr char kArchiveMagic[] = "TENDARC\n";
inline constexpr int kArchiveFormatVersion = 1;
// What a reader accepts (hostile files): partitions per archive, and offsets below 2^48 (a topic
// writing a million records a second takes nine years to reach it).
inline constexpr int kMaxArchivePartitions = 1 << 16;
inline constexpr int64_t kMaxArchiveOffset = int64_t{1} << 48;
inline constexpr uint32_t kMaxArchiveFrame = 64u << 20;

class ArchiveWriter {
 public:
  // Starts `path`.partial with the header (format_version is set here).
  static absl::StatusOr<std::unique_ptr<ArchiveWriter>> Create(const std::string& path,
                                                               v1::ArchiveHeader header);
  // Removes the unfinished `path`.partial unless Finish() succeeded.
  ~ArchiveWriter();

  // kFailedPrecondition for a record of a lower partition than the last one when the header is
  // `partition_major` (the caller's order is wrong), kInvalidArgument for one whose frame would
  // exceed kMaxArchiveFrame; nothing is written then.
  absl::Status Append(const v1::ArchiveRecord& record);
  // Writes the end frame, flushes, syncs and renames to `path`.
  absl::Status Finish();
  int64_t records() const { return records_; }
  int64_t bytes() const { return bytes_; }

 private:
  ArchiveWriter() = default;
  absl::Status WriteFrame(const v1::ArchiveFrame& frame);

  std::string path_;
  std::string partial_;
  std::FILE* out_ = nullptr;
  std::string buffer_;
  int64_t records_ = 0;
  int64_t bytes_ = 0;
  bool finished_ = false;
  bool partition_major_ = false;
  int32_t last_partition_ = 0;
};

// Reads a record frame's payload (an ArchiveFrame holding a record) as protobuf's serializer
// writes it, straight into `record`, reusing its strings' capacity: the tag of field 2 (LEN), the
// record's length (the rest of the payload), then the record's fields in field-number order,
// each at most once (a zero value may be left out): partition (varint, 0 to 2^31 - 1), offset
// and timestamp_ms (varint), key and value (LEN). False for anything else (another frame, fields
// out of order or repeated, unknown fields, a negative partition, a cut), and `record` is then
// unspecified: the caller parses the payload with protobuf instead. Where it returns true the
// record is the one protobuf's parser reads from the same bytes. Wire format:
// https://protobuf.dev/programming-guides/encoding/.
bool ReadRecordFrame(absl::string_view payload, v1::ArchiveRecord* record);

class ArchiveReader {
 public:
  // Opens `path` and reads its header. kNotFound; kDataLoss for a file that is not a tend archive
  // of a known format version.
  static absl::StatusOr<std::unique_ptr<ArchiveReader>> Open(const std::string& path);

  const v1::ArchiveHeader& header() const { return header_; }
  // The next record into `*record`: true, or false after the end frame (which must be there and
  // count the records read). kDataLoss naming the byte position and record number for a
  // corrupt or truncated file; `*record` is then unspecified.
  absl::StatusOr<bool> Next(v1::ArchiveRecord* record);
  int64_t records_read() const { return records_; }
  int64_t position() const { return position_; }  // bytes consumed so far
  int64_t size() const { return size_; }          // of the file

 private:
  ArchiveReader() = default;
  // Reads one frame's payload (into buffer_, checksum checked), or one frame.
  absl::StatusOr<absl::string_view> ReadPayload();
  absl::Status ReadFrame(v1::ArchiveFrame* frame);
  absl::Status Corrupt(int64_t at, absl::string_view problem) const;

  std::string path_;
  std::ifstream in_;
  std::string buffer_;
  v1::ArchiveHeader header_;
  int64_t records_ = 0;
  int64_t position_ = 0;
  int64_t size_ = 0;
  bool ended_ = false;
  std::vector<int64_t> next_offset_;  // per partition: the lowest offset the next record may have
  int32_t last_partition_ = 0;        // of the last record (a partition-major file never goes back)
};

// An archive as the engine's record source (`tend replay --archive`). It holds kBatch records at
// once, so a value (or key) longer than `max_value_bytes` (0: no bound) is handed on cut to
// max_value_bytes + 1 bytes: a consumer that refuses values over max_value_bytes (the engine's
// kMaxEventBytes) refuses it just the same, and 64 records of 64 MiB (a hand-made archive: 4.2 GB
// of RSS) are not held, nor kept as the capacity of the records that follow.
class ArchiveSource : public SequentialSource {
 public:
  // `reader` is borrowed.
  explicit ArchiveSource(ArchiveReader* reader, size_t max_value_bytes = 0)
      : reader_(reader), max_value_bytes_(max_value_bytes) {}

 protected:
  absl::StatusOr<bool> Next(LogRecord* record) override;

 private:
  ArchiveReader* reader_;
  const size_t max_value_bytes_;
  // Read in turn, so that a record's views outlive the batch it is in (SequentialSource::Next).
  std::array<v1::ArchiveRecord, kBatch> records_;
  size_t next_ = 0;
};

}  // namespace tend

#endif  // TEND_KAFKA_ARCHIVE_H_
