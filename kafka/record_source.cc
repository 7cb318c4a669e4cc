#include "kafka/record_source.h"

#include <utility>

namespace tend {

absl::Status SequentialSource::Start(PartitionListener* listener) {
  listener_ = listener;
  from_.clear();
  deferred_ = absl::OkStatus();
  ended_ = false;
  return absl::OkStatus();
}

absl::StatusOr<bool> SequentialSource::Poll(absl::Duration /*wait*/,
                                            std::vector<LogRecord>* records) {
  records->clear();
  if (!deferred_.ok()) return std::exchange(deferred_, absl::OkStatus());
  if (ended_) return false;
  LogRecord r;
  // Records below a partition's offset are read and skipped until one is kept; after it, at most
  // batch_ - 1 reads, kept or skipped: a record's views outlive only the next kBatch - 1.
  int reads_after_first = 0;
  while (records->empty() || reads_after_first < batch_ - 1) {
    if (!records->empty()) ++reads_after_first;
    absl::Status s;
    absl::StatusOr<bool> more = Next(&r);
    if (!more.ok()) {
      s = more.status();
    } else if (!*more) {
      ended_ = true;
      break;
    } else {
      auto it = from_.find(r.partition);
      if (it == from_.end()) {
        absl::StatusOr<int64_t> from = listener_->OnAssigned(r.partition);
        if (from.ok()) {
          it = from_.emplace(r.partition, *from).first;
        } else {
          s = from.status();
        }
      }
      if (s.ok()) {
        if (r.offset >= it->second) records->push_back(r);  // else folded by this directory
        continue;
      }
    }
    if (records->empty()) return s;
    deferred_ = s;
    return true;
  }
  return !records->empty();
}

}  // namespace tend
