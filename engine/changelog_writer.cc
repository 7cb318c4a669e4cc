#include "engine/changelog_writer.h"

#include <algorithm>
#include <map>
#include <optional>
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

absl::Status ChangelogWriter::Produce(const ChangelogRecord& r, uint64_t commit, int64_t prev,
                                      std::shared_ptr<Acks> acks) {
  // A delete is a tombstone: no value at all (a null payload), so compaction forgets the key.
  const absl::string_view value =
      r.value.has_value() ? absl::string_view(*r.value) : absl::string_view();
  std::string id, previous;
  storage_format::AppendBe64(commit, &id);
  storage_format::AppendBe64(static_cast<uint64_t>(std::max<int64_t>(prev, 0)), &previous);
  const KafkaHeader headers[2] = {{changelog::kCommitHeader, id},
                                  {changelog::kPrevHeader, previous}};
  const size_t count = commit == 0 ? 0 : (prev >= 0 ? 2 : 1);
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
  return producer_->Produce(topic_, r.partition, r.key, value,
                            std::span<const KafkaHeader>(headers, count), std::move(on_delivery));
}

absl::Status ChangelogWriter::Await(const std::shared_ptr<Acks>& acks, int64_t produced) {
  // The producer's own thread serves the delivery reports; a record not acknowledged within
  // librdkafka's message.timeout.ms is reported failed.
  absl::MutexLock lock(&acks->mu);
  std::pair<Acks*, int64_t> all{acks.get(), produced};
  acks->mu.AwaitWithTimeout(
      absl::Condition(
          +[](std::pair<Acks*, int64_t>* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return w->first->done >= w->second;
          },
          &all),
      absl::Seconds(60));
  if (!acks->failure.ok() || acks->done < produced) {
    return absl::UnavailableError(absl::StrCat(
        "the state changelog ", topic_, " did not take every record of a commit (",
        acks->failure.ok() ? "no acknowledgement within 60 s" : acks->failure.message(),
        "); the commit is not written to the state directory, and is folded again at the next "
        "start"));
  }
  records_.fetch_add(produced, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ChangelogWriter::CheckpointNext(const Storage& storage,
                                                        int32_t partition) {
  {
    absl::MutexLock lock(&mu_);
    auto it = checkpoint_next_.find(partition);
    if (it != checkpoint_next_.end()) return it->second;
  }
  TEND_ASSIGN_OR_RETURN(const auto position, storage.LoadChangelogPosition(partition));
  const int64_t next = position.has_value() ? position->checkpoint_next() : 0;
  absl::MutexLock lock(&mu_);
  checkpoint_next_[partition] = next;
  return next;
}

absl::StatusOr<PartitionOffsets> ChangelogWriter::Watermarks(int32_t partition,
                                                             absl::Duration timeout) {
  PartitionOffsets o;
  TEND_RETURN_IF_ERROR(FromKafka(
      rd_kafka_query_watermark_offsets(producer_->handle(), topic_.c_str(), partition, &o.low,
                                       &o.high,
                                       static_cast<int>(absl::ToInt64Milliseconds(timeout))),
      absl::StrCat("reading the offsets of ", topic_, "[", partition, "]")));
  return o;
}

void ChangelogWriter::Restored(int32_t partition) {
  absl::MutexLock lock(&mu_);
  checkpoint_next_.erase(partition);
}

absl::Status ChangelogWriter::Write(const Storage& storage, StateBatch* batch) {
  TEND_ASSIGN_OR_RETURN(std::vector<ChangelogRecord> records, storage.ChangelogOf(*batch));
  if (records.empty()) return absl::OkStatus();
  // First every partition's records, each under its commit id; once all are acknowledged, the
  // checkpoints: a checkpoint in the changelog always follows its whole commit.
  auto data = std::make_shared<Acks>();
  std::vector<std::pair<ChangelogRecord*, uint64_t>> checkpoints;
  int32_t partition = -1;
  uint64_t commit = 0;
  int64_t produced = 0;
  for (ChangelogRecord& r : records) {
    if (r.partition != partition) {
      partition = r.partition;
      commit = NewCommitId();
    }
    if (changelog::IsCheckpoint(r.key)) {
      checkpoints.emplace_back(&r, commit);
      continue;
    }
    TEND_RETURN_IF_ERROR(Produce(r, commit, /*prev=*/-1, data));
    ++produced;
  }
  if (produced > 0) TEND_RETURN_IF_ERROR(Await(data, produced));
  auto done = std::make_shared<Acks>();
  for (const auto& [r, id] : checkpoints) {
    TEND_ASSIGN_OR_RETURN(const int64_t prev, CheckpointNext(storage, r->partition));
    TEND_RETURN_IF_ERROR(Produce(*r, id, prev, done));
  }
  TEND_RETURN_IF_ERROR(Await(done, static_cast<int64_t>(checkpoints.size())));
  absl::MutexLock lock(&done->mu);
  absl::MutexLock ours(&mu_);
  for (const auto& [p, next] : done->next) {
    batch->PutChangelogPosition(p, next, next);
    checkpoint_next_[p] = next;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ChangelogWriter::Seed(const Storage& storage, int32_t partition) {
  const uint64_t commit = NewCommitId();
  std::optional<ChangelogRecord> checkpoint;
  auto data = std::make_shared<Acks>();
  int64_t produced = 0;
  TEND_RETURN_IF_ERROR(storage.ForEachChangelogRecord(partition, [&](ChangelogRecord r) {
    if (changelog::IsCheckpoint(r.key)) {
      checkpoint = std::move(r);
      return absl::OkStatus();
    }
    ++produced;
    return Produce(r, commit, /*prev=*/-1, data);
  }));
  if (!checkpoint.has_value()) return 0;  // nothing committed: nothing to seed
  if (produced > 0) TEND_RETURN_IF_ERROR(Await(data, produced));
  return ProduceCheckpoint(*checkpoint, commit, /*prev=*/0);
}

absl::StatusOr<int64_t> ChangelogWriter::Repair(const Storage& storage, int32_t partition,
                                                const std::vector<std::string>& keys) {
  TEND_ASSIGN_OR_RETURN(auto has, storage.LoadCheckpoint(partition));
  if (!has.has_value() || keys.empty()) return 0;
  TEND_ASSIGN_OR_RETURN(ChangelogRecord cp,
                        storage.CurrentChangelogRecord(
                            partition, changelog::kCheckpoint +
                                           storage_format::CheckpointKey(partition)));
  const uint64_t commit = NewCommitId();
  auto data = std::make_shared<Acks>();
  for (const std::string& key : keys) {
    TEND_ASSIGN_OR_RETURN(const ChangelogRecord r, storage.CurrentChangelogRecord(partition, key));
    TEND_RETURN_IF_ERROR(Produce(r, commit, /*prev=*/-1, data));
  }
  TEND_RETURN_IF_ERROR(Await(data, static_cast<int64_t>(keys.size())));
  TEND_ASSIGN_OR_RETURN(const int64_t prev, CheckpointNext(storage, partition));
  return ProduceCheckpoint(cp, commit, prev);
}

absl::StatusOr<int64_t> ChangelogWriter::ProduceCheckpoint(const ChangelogRecord& checkpoint,
                                                           uint64_t commit, int64_t prev) {
  auto done = std::make_shared<Acks>();
  TEND_RETURN_IF_ERROR(Produce(checkpoint, commit, prev, done));
  TEND_RETURN_IF_ERROR(Await(done, 1));
  absl::MutexLock lock(&done->mu);
  const int64_t next = done->next[checkpoint.partition];
  absl::MutexLock ours(&mu_);
  checkpoint_next_[checkpoint.partition] = next;
  return next;
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
    if (Produce(r, /*commit=*/0, /*prev=*/-1, nullptr).ok()) {
      removals_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

}  // namespace tend
