#include "storage/changelog.h"

#include <utility>

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
  if (record.value.has_value() && (record.value->empty() || (*record.value)[0] != kPut)) {
    return absl::DataLossError(absl::StrCat(
        "state changelog record \"", absl::CHexEscape(record.key.substr(0, 64)),
        "\" of partition ", partition, ": its value is not of format version ",
        kChangelogFormatVersion));
  }
  if (IsCheckpoint(record.key) && !record.value.has_value()) {
    return absl::DataLossError(
        absl::StrCat("partition ", partition, "'s state changelog deletes its checkpoint"));
  }
  return absl::OkStatus();
}

}  // namespace changelog

absl::Status ChangelogRestorer::Add(ChangelogRecord record) {
  TEND_RETURN_IF_ERROR(changelog::Check(record));
  const bool checkpoint = changelog::IsCheckpoint(record.key);
  pending_.push_back(std::move(record));
  if (!checkpoint) return absl::OkStatus();
  TEND_RETURN_IF_ERROR(storage_->ApplyChangelog(pending_));
  pending_.clear();
  ++commits_applied_;
  return absl::OkStatus();
}

}  // namespace tend
