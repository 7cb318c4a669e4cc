#include "kafka/record_source.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace tend {

absl::Status SequentialSource::Start(PartitionListener* listener) {
  listener_ = listener;
  from_.clear();
  deferred_ = absl::OkStatus();
  ended_ = false;
  return absl::OkStatus();
}

absl::Status SequentialSource::ReadOne(std::vector<LogRecord>* records) {
  LogRecord r;
  TEND_ASSIGN_OR_RETURN(bool more, Next(&r));
  if (!more) {
    ended_ = true;
    return absl::OkStatus();
  }
  if (r.partition < first_ || r.partition > last_) {
    if (ascending_ && r.partition > last_) ended_ = true;  // the rest is another range's
    return absl::OkStatus();
  }
  auto it = from_.find(r.partition);
  if (it == from_.end()) {
    TEND_ASSIGN_OR_RETURN(int64_t from, listener_->OnAssigned(r.partition));
    if (from == PartitionListener::kPartitionHeld) {
      return absl::FailedPreconditionError(absl::StrCat(
          "partition ", r.partition, " was refused by the reader: a finite source cannot hold it "
          "back"));
    }
    it = from_.emplace(r.partition, from).first;
  }
  if (r.offset >= it->second) records->push_back(r);  // else folded by this directory already
  return absl::OkStatus();
}

absl::StatusOr<bool> SequentialSource::Poll(absl::Duration /*wait*/,
                                            std::vector<LogRecord>* records) {
  records->clear();
  if (!deferred_.ok()) return std::exchange(deferred_, absl::OkStatus());
  // Records below a partition's offset, or of partitions not served, are read and passed over
  // until one is kept (or kMaxPassedOver were); after it, at most batch_ - 1 reads, kept or
  // passed over: a record's views outlive only the next kBatch - 1.
  int reads_after_first = 0;
  int passed_over = 0;
  while (!ended_ && (records->empty() || reads_after_first < batch_ - 1)) {
    if (!records->empty()) {
      ++reads_after_first;
    } else if (passed_over++ == kMaxPassedOver) {
      break;  // none kept yet: back to the reader, which may have been told to stop
    }
    if (absl::Status s = ReadOne(records); !s.ok()) {
      if (records->empty()) return s;
      deferred_ = s;  // the records before it are folded first
      break;
    }
  }
  return !records->empty() || !ended_;  // empty and not ended: only passed over so far
}

}  // namespace tend
