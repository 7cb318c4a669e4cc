#include "engine/changelog_writer.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "storage/format.h"

namespace tend {

struct ChangelogWriter::Acks {
  absl::Mutex mu;
  int64_t done ABSL_GUARDED_BY(mu) = 0;
  std::map<int32_t, int64_t> next ABSL_GUARDED_BY(mu);  // partition -> offset after its last
  absl::Status failure ABSL_GUARDED_BY(mu);
};

absl::StatusOr<std::unique_ptr<ChangelogWriter>> ChangelogWriter::Create(const KafkaProps& props,
                                                                         std::string topic) {
  KafkaProps all = {{"enable.idempotence", "true"}, {"acks", "all"}};
  all.insert(all.end(), props.begin(), props.end());
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create(all));
  return std::unique_ptr<ChangelogWriter>(new ChangelogWriter(std::move(producer), std::move(topic)));
}

uint64_t ChangelogWriter::NewCommitId() {
  absl::MutexLock lock(&mu_);
  uint64_t id = 0;
  while (id == 0) id = absl::Uniform<uint64_t>(bitgen_);
  return id;
}

absl::Status ChangelogWriter::Produce(const ChangelogRecord& r, uint64_t commit,
                                      std::shared_ptr<Acks> acks) {
  // A delete is a tombstone: no value at all (a null payload), so compaction forgets the key.
  const absl::string_view value =
      r.value.has_value() ? absl::string_view(*r.value) : absl::string_view();
  std::string id;
  storage_format::AppendBe64(commit, &id);
  const KafkaHeader header{changelog::kCommitHeader, id};
  std::span<const KafkaHeader> headers;
  if (commit != 0) headers = std::span<const KafkaHeader>(&header, 1);
  Producer::DeliveryFn on_delivery;
  if (acks != nullptr) {
    on_delivery = [acks](const Delivery& d) {
      absl::MutexLock lock(&acks->mu);
      ++acks->done;
      if (!d.status.ok()) {
        if (acks->failure.ok()) acks->failure = d.status;
        return;
      }
      int64_t& next = acks->next[d.partition];
      next = std::max(next, d.offset + 1);
    };
  }
  return producer_->Produce(topic_, r.partition, r.key, value, headers, std::move(on_delivery));
}

absl::Status ChangelogWriter::Await(const std::shared_ptr<Acks>& acks, int64_t produced) {
  absl::Status flushed = producer_->Flush(absl::Seconds(60));
  absl::MutexLock lock(&acks->mu);
  // Flush returns once the queue is empty; the last reports may still be running.
  std::pair<Acks*, int64_t> all{acks.get(), produced};
  acks->mu.AwaitWithTimeout(
      absl::Condition(
          +[](std::pair<Acks*, int64_t>* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return w->first->done >= w->second;
          },
          &all),
      absl::Seconds(5));
  if (!acks->failure.ok() || acks->done < produced || !flushed.ok()) {
    const absl::Status why = !acks->failure.ok() ? acks->failure : flushed;
    return absl::UnavailableError(absl::StrCat(
        "the state changelog ", topic_, " did not take every record of a commit (",
        why.ok() ? "acknowledgements missing" : why.message(),
        "); the commit is not written to the state directory, and is folded again at the next "
        "start"));
  }
  records_.fetch_add(produced, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status ChangelogWriter::Write(const Storage& storage, StateBatch* batch) {
  TEND_ASSIGN_OR_RETURN(const std::vector<ChangelogRecord> records, storage.ChangelogOf(*batch));
  if (records.empty()) return absl::OkStatus();
  auto acks = std::make_shared<Acks>();
  int32_t partition = -1;
  uint64_t commit = 0;
  for (const ChangelogRecord& r : records) {
    if (r.partition != partition) {
      partition = r.partition;
      commit = NewCommitId();
    }
    TEND_RETURN_IF_ERROR(Produce(r, commit, acks));
  }
  TEND_RETURN_IF_ERROR(Await(acks, static_cast<int64_t>(records.size())));
  absl::MutexLock lock(&acks->mu);
  for (const auto& [p, next] : acks->next) batch->PutChangelogPosition(p, next);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ChangelogWriter::Seed(const Storage& storage, int32_t partition) {
  auto acks = std::make_shared<Acks>();
  const uint64_t commit = NewCommitId();
  int64_t produced = 0;
  TEND_RETURN_IF_ERROR(storage.ForEachChangelogRecord(partition, [&](ChangelogRecord r) {
    ++produced;
    return Produce(r, commit, acks);
  }));
  if (produced == 0) return 0;
  TEND_RETURN_IF_ERROR(Await(acks, produced));
  absl::MutexLock lock(&acks->mu);
  return acks->next[partition];
}

void ChangelogWriter::Forget(const std::vector<OutboxRemoval>& removals) {
  for (const OutboxRemoval& removal : removals) {
    ChangelogRecord r;
    r.partition = removal.partition;
    r.key.push_back(changelog::kOutbox);
    r.key += storage_format::OutboxKey(removal.partition, removal.command->not_before().seconds(),
                                       removal.command->command_id());
    // Best effort: a tombstone that never arrives leaves the command to the next owner, who
    // offers it to the sink again (dropped there as a duplicate).
    if (Produce(r, /*commit=*/0, nullptr).ok()) {
      removals_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

}  // namespace tend
