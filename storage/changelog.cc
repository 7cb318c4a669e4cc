#include "storage/changelog.h"

#include <algorithm>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "storage/format.h"
#include "storage/storage.h"

namespace tend {
namespace sf = storage_format;

namespace changelog {

absl::StatusOr<int32_t> PartitionOf(absl::string_view key) {
  absl::string_view rest = key.substr(key.empty() ? 0 : 1);
  const bool checkpoint = IsCheckpoint(key);
  if (checkpoint && !absl::ConsumePrefix(&rest, sf::kCheckpointPrefix)) rest = {};
  const bool tagged = !key.empty() && (key[0] == kState || key[0] == kOutbox ||
                                       key[0] == kTimers || checkpoint);
  if (!tagged || rest.size() < 4 || (checkpoint && rest.size() != 4)) {
    return absl::DataLossError(
        absl::StrCat("not a state changelog key: \"", absl::CHexEscape(key.substr(0, 64)), "\""));
  }
  return static_cast<int32_t>(sf::ReadBe32(rest));
}

absl::Status Check(const ChangelogRecord& record) {
  TEND_ASSIGN_OR_RETURN(const int32_t partition, PartitionOf(record.key));
  if (partition != record.partition) {
    return absl::DataLossError(absl::StrCat("a state changelog record of partition ", partition,
                                            " in partition ", record.partition, "'s changelog"));
  }
  // The tags of versions 1 to kChangelogFormatVersion are consecutive: kPutV1 (0x01) to kPut.
  static_assert(kPut - kPutV1 + 1 == kChangelogFormatVersion);
  if (record.value.has_value() &&
      (record.value->empty() || (*record.value)[0] < kPutV1 || (*record.value)[0] > kPut)) {
    return absl::DataLossError(absl::StrCat(
        "state changelog record \"", absl::CHexEscape(record.key.substr(0, 64)),
        "\" of partition ", partition, ": its value is not of format version 1 to ",
        kChangelogFormatVersion, " (written by a newer tend? run one version on all instances)"));
  }
  if (IsCheckpoint(record.key) && !record.value.has_value()) {
    return absl::DataLossError(
        absl::StrCat("partition ", partition, "'s state changelog deletes its checkpoint"));
  }
  if (record.commit == 0 && (record.key[0] != kOutbox || record.value.has_value())) {
    return absl::DataLossError(absl::StrCat(
        "state changelog record \"", absl::CHexEscape(record.key.substr(0, 64)),
        "\" of partition ", partition, " has no ", kCommitHeader,
        " header (only an outbox removal may stand alone)"));
  }
  return absl::OkStatus();
}

namespace {
constexpr char kDamagePayload[] = "type.tend.dev/changelog-damage";
}  // namespace

absl::Status Damage(absl::Status status) {
  if (!status.ok()) status.SetPayload(kDamagePayload, absl::Cord("1"));
  return status;
}

bool IsDamage(const absl::Status& status) {
  return status.GetPayload(kDamagePayload).has_value();
}

}  // namespace changelog

absl::Status ChangelogRestorer::Add(ChangelogRecord record) {
  TEND_RETURN_IF_ERROR(changelog::Damage(changelog::Check(record)));
  if (record.partition != partition_) {
    return changelog::Damage(absl::DataLossError(absl::StrCat(
        "a record of partition ", record.partition, " in the restore of partition ", partition_)));
  }
  if (record.commit == 0) {
    removals_.push_back(std::move(record));
    return absl::OkStatus();
  }
  if (!changelog::IsCheckpoint(record.key)) {
    pending_bytes_ += static_cast<int64_t>(record.key.size() +
                                           (record.value ? record.value->size() : 0) + 64);
    if (pending_bytes_ > max_pending_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "partition ", partition_, "'s state changelog holds more than ", max_pending_bytes_,
          " bytes of records before a checkpoint"));
    }
    pending_.push_back(std::move(record));
    return absl::OkStatus();
  }
  // Complete: the records of this commit, and those before the previous checkpoint it names
  // (their own checkpoints compacted away). Records of other commits after that previous
  // checkpoint are a writer's killed mid-commit: skipped.
  const int64_t previous = record.prev_checkpoint_next;
  std::vector<ChangelogRecord> apply;
  apply.reserve(pending_.size() + removals_.size() + 1);
  for (ChangelogRecord& r : pending_) {
    if (r.commit == record.commit || (previous > 0 && r.offset < previous)) {
      apply.push_back(std::move(r));
    } else {
      ++records_skipped_;
      skipped_keys_.push_back(std::move(r.key));
    }
  }
  for (ChangelogRecord& r : removals_) apply.push_back(std::move(r));
  const int64_t next = record.offset + 1;
  apply.push_back(std::move(record));
  TEND_RETURN_IF_ERROR(storage_->ApplyChangelog(partition_, apply, next, next, on_state_));
  checkpoint_next_ = next;
  records_applied_ += static_cast<int64_t>(apply.size());
  pending_.clear();
  pending_bytes_ = 0;
  removals_.clear();
  ++commits_applied_;
  return absl::OkStatus();
}

std::vector<std::string> ChangelogRestorer::OrphanKeys() const {
  std::vector<std::string> keys = skipped_keys_;
  for (const ChangelogRecord& r : pending_) keys.push_back(r.key);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

absl::Status ChangelogRestorer::Finish(int64_t end_offset) {
  const int64_t next = pending_.empty() ? end_offset : pending_.front().offset;
  TEND_RETURN_IF_ERROR(
      storage_->ApplyChangelog(partition_, removals_, next, checkpoint_next_, on_state_));
  records_applied_ += static_cast<int64_t>(removals_.size());
  removals_.clear();
  return absl::OkStatus();
}

}  // namespace tend
