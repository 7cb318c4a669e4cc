#include "engine/changelog_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace tend {

absl::StatusOr<std::unique_ptr<ChangelogWriter>> ChangelogWriter::Create(const KafkaProps& props,
                                                                         std::string topic) {
  KafkaProps all = {{"enable.idempotence", "true"}, {"acks", "all"}};
  all.insert(all.end(), props.begin(), props.end());
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create(all));
  return std::unique_ptr<ChangelogWriter>(new ChangelogWriter(std::move(producer), std::move(topic)));
}

absl::Status ChangelogWriter::Write(const Storage& storage, const StateBatch& batch) {
  TEND_ASSIGN_OR_RETURN(const std::vector<ChangelogRecord> records, storage.ChangelogOf(batch));
  if (records.empty()) return absl::OkStatus();
  const int64_t failed_before = producer_->failed();
  for (const ChangelogRecord& r : records) {
    // A delete is a tombstone: no value at all (a null payload), so compaction forgets the key.
    const absl::string_view value =
        r.value.has_value() ? absl::string_view(*r.value) : absl::string_view();
    TEND_RETURN_IF_ERROR(producer_->Produce(topic_, r.partition, r.key, value, {}, nullptr));
  }
  TEND_RETURN_IF_ERROR(producer_->Flush(absl::Seconds(60)));
  if (producer_->failed() != failed_before) {
    return absl::UnavailableError(absl::StrCat(
        "the state changelog ", topic_, " did not take every record of a commit; stopping (the "
        "commit is in the state directory, and its records are written again from there: not yet "
        "built)"));
  }
  records_ += static_cast<int64_t>(records.size());
  return absl::OkStatus();
}

}  // namespace tend
