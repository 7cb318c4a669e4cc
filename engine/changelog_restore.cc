#include "engine/changelog_restore.h"

#include <google/protobuf/util/time_util.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/time.h"
#include "storage/format.h"

namespace tend {

const char* RestoreHowName(RestoreReport::How how) {
  switch (how) {
    case RestoreReport::How::kCurrent: return "current";
    case RestoreReport::How::kTail: return "tail";
    case RestoreReport::How::kWhole: return "whole";
    case RestoreReport::How::kSeeded: return "seeded";
  }
  return "?";
}

absl::StatusOr<RestoreReport> RestorePartition(Storage* storage, PartitionReader* reader,
                                               ChangelogWriter* writer, int32_t partition,
                                               const RestoredStateFn& on_state,
                                               const RestoreOptions& options) {
  const absl::Time start = absl::Now();
  const std::string& topic = writer->topic();
  RestoreReport report;
  report.partition = partition;
  TEND_ASSIGN_OR_RETURN(const PartitionOffsets log, writer->Watermarks(partition));
  TEND_ASSIGN_OR_RETURN(const auto position, storage->LoadChangelogPosition(partition));
  TEND_ASSIGN_OR_RETURN(const auto checkpoint, storage->LoadCheckpoint(partition));
  report.end = log.high;
  bool whole = false;
  if (position.has_value()) {
    const int64_t at = position->next_offset();
    if (at > log.high && log.high > log.low) {
      return absl::DataLossError(absl::StrCat(
          "the state changelog ", topic, "[", partition, "] ends at offset ", log.high,
          ", before offset ", at, " this state directory reflects: was the topic recreated or "
          "truncated? Delete the topic to have it seeded again from this directory, or start "
          "from an empty directory"));
    }
    if (at > log.high) {  // the topic is empty: recreated; this copy seeds it again
      TEND_ASSIGN_OR_RETURN(const int64_t next, writer->Seed(*storage, partition));
      TEND_RETURN_IF_ERROR(storage->ApplyChangelog(partition, {}, next, next, nullptr));
      report.how = RestoreReport::How::kSeeded;
      report.took = absl::Now() - start;
      return report;
    }
    const absl::Time written = FromProtoTime(position->written_at());
    if (at == log.high) {
      report.from = at;
      report.took = absl::Now() - start;
      return report;  // current
    }
    whole = at < log.low || absl::Now() - written > options.tail_max_age;
    report.from = at;
  } else if (log.high == log.low) {
    if (checkpoint.has_value()) {
      TEND_ASSIGN_OR_RETURN(const int64_t next, writer->Seed(*storage, partition));
      TEND_RETURN_IF_ERROR(storage->ApplyChangelog(partition, {}, next, next, nullptr));
      report.how = RestoreReport::How::kSeeded;
    }
    report.from = report.end = log.high;
    report.took = absl::Now() - start;
    return report;
  } else {
    whole = true;
  }
  if (whole) {
    TEND_RETURN_IF_ERROR(storage->DropPartition(partition));
    report.from = log.low;
    report.how = RestoreReport::How::kWhole;
  } else {
    report.how = RestoreReport::How::kTail;
  }

  ChangelogRestorer restorer(storage, partition, on_state,
                             whole ? 0 : position->checkpoint_next());
  absl::Time last_progress = absl::Now();
  auto update = [&] {
    report.commits_applied = restorer.commits_applied();
    report.records_skipped = restorer.records_skipped();
    report.pending = static_cast<int64_t>(restorer.pending());
    report.took = absl::Now() - start;
  };
  TEND_RETURN_IF_ERROR(reader->Read(topic, partition, report.from, report.end,
                                    [&](const ReadRecord& r) -> absl::Status {
    ChangelogRecord record;
    record.partition = partition;
    record.offset = r.offset;
    record.key = std::string(r.key);
    // A put always carries its marker byte: an empty value is a tombstone too.
    if (r.value.has_value() && !r.value->empty()) record.value = std::string(*r.value);
    if (auto id = r.Header(std::string(changelog::kCommitHeader).c_str()); id.has_value()) {
      if (id->size() != 8 || storage_format::ReadBe64(*id) == 0) {
        return changelog::Damage(absl::DataLossError(
            absl::StrCat("state changelog ", topic, "[", partition, "] offset ", r.offset,
                         ": a malformed ", changelog::kCommitHeader, " header")));
      }
      record.commit = storage_format::ReadBe64(*id);
    }
    if (auto prev = r.Header(std::string(changelog::kPrevHeader).c_str()); prev.has_value()) {
      const uint64_t at = prev->size() == 8 ? storage_format::ReadBe64(*prev) : ~uint64_t{0};
      if (at > static_cast<uint64_t>(r.offset)) {
        return changelog::Damage(absl::DataLossError(
            absl::StrCat("state changelog ", topic, "[", partition, "] offset ", r.offset,
                         ": a malformed ", changelog::kPrevHeader, " header")));
      }
      record.prev_checkpoint_next = static_cast<int64_t>(at);
    }
    ++report.records_read;
    absl::Status s = restorer.Add(std::move(record));
    if (!s.ok()) {
      return WithContext(
          absl::StrCat("state changelog ", topic, "[", partition, "] offset ", r.offset), s);
    }
    if (options.progress && absl::Now() - last_progress >= options.progress_every) {
      update();
      options.progress(report);
      last_progress = absl::Now();
    }
    return absl::OkStatus();
  }));
  TEND_RETURN_IF_ERROR(restorer.Finish(report.end));
  update();
  // Unfinished commits met: their keys written again, as restored, in a complete commit.
  if (const std::vector<std::string> orphans = restorer.OrphanKeys(); !orphans.empty()) {
    writer->Restored(partition);  // its previous checkpoint is the one just applied
    TEND_ASSIGN_OR_RETURN(const int64_t next, writer->Repair(*storage, partition, orphans));
    if (next > 0) {
      TEND_RETURN_IF_ERROR(storage->ApplyChangelog(partition, {}, next, next, nullptr));
      report.repaired = static_cast<int64_t>(orphans.size());
      report.end = next;
    }
  }
  if (options.progress) options.progress(report);
  return report;
}

}  // namespace tend
