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
  while (records->size() < static_cast<size_t>(batch_)) {
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
