// ON-DISK FORMAT of the tend state directory (RocksDB). Everything in this header is persisted:
// changing a name, a prefix or an encoding changes what existing databases mean. Bump
// kStorageFormatVersion with any change; the engine refuses a directory of another version.
//
// Column families (kColumnFamilies):
//   meta    "format_version"            -> decimal kStorageFormatVersion
//           "topic"                     -> name of the events topic this state was folded from
//           "checkpoint/" + BE32(p)     -> tend.v1.PartitionCheckpoint (next offset of partition p)
//   state   BE32(p) + patient_id        -> tend.v1.PatientState
//   dedupe  BE32(p) + U8(len(patient_id)) + patient_id + event_id -> "" (event applied once)
// BE32 is a big-endian uint32 so that keys of one partition sort together (partition-scoped state,
// DESIGN.md point 6: a partition's keys can be dropped or moved as one range).
// States, dedupe marks and checkpoints of one commit are written in ONE WriteBatch.
#ifndef TEND_ENGINE_STORAGE_FORMAT_H_
#define TEND_ENGINE_STORAGE_FORMAT_H_

#include <array>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

namespace tend::storage_format {

inline constexpr int kStorageFormatVersion = 1;

inline constexpr absl::string_view kMetaCf = "meta";
inline constexpr absl::string_view kStateCf = "state";
inline constexpr absl::string_view kDedupeCf = "dedupe";
inline constexpr std::array<absl::string_view, 3> kColumnFamilies = {kMetaCf, kStateCf, kDedupeCf};

inline constexpr absl::string_view kFormatVersionKey = "format_version";
inline constexpr absl::string_view kTopicKey = "topic";
inline constexpr absl::string_view kCheckpointPrefix = "checkpoint/";

inline void AppendBe32(uint32_t v, std::string* out) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}

inline uint32_t ReadBe32(absl::string_view s) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(s[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[3]));
}

inline std::string CheckpointKey(int32_t partition) {
  std::string k(kCheckpointPrefix.data(), kCheckpointPrefix.size());
  AppendBe32(static_cast<uint32_t>(partition), &k);
  return k;
}

inline std::string PartitionPrefix(int32_t partition) {
  std::string k;
  AppendBe32(static_cast<uint32_t>(partition), &k);
  return k;
}

inline std::string StateKey(int32_t partition, absl::string_view patient_id) {
  std::string k;
  k.reserve(4 + patient_id.size());
  AppendBe32(static_cast<uint32_t>(partition), &k);
  k.append(patient_id.data(), patient_id.size());
  return k;
}

// patient_id is at most 128 bytes (IsValidId), so its length fits the one-byte prefix.
inline void AppendDedupeKey(int32_t partition, absl::string_view patient_id,
                            absl::string_view event_id, std::string* k) {
  k->clear();
  AppendBe32(static_cast<uint32_t>(partition), k);
  k->push_back(static_cast<char>(static_cast<uint8_t>(patient_id.size())));
  k->append(patient_id.data(), patient_id.size());
  k->append(event_id.data(), event_id.size());
}

}  // namespace tend::storage_format

#endif  // TEND_ENGINE_STORAGE_FORMAT_H_
