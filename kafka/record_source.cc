#include "kafka/record_source.h"

#include "base/status.h"

namespace tend {

absl::Status SequentialSource::Start(PartitionListener* listener) {
  listener_ = listener;
  from_.clear();
  return absl::OkStatus();
}

absl::StatusOr<bool> SequentialSource::Poll(absl::Duration /*wait*/,
                                            std::vector<LogRecord>* records) {
  records->clear();
  LogRecord r;
  for (;;) {
    TEND_ASSIGN_OR_RETURN(bool more, Next(&r));
    if (!more) return false;
    auto it = from_.find(r.partition);
    if (it == from_.end()) {
      TEND_ASSIGN_OR_RETURN(int64_t from, listener_->OnAssigned(r.partition));
      it = from_.emplace(r.partition, from).first;
    }
    if (r.offset < it->second) continue;  // folded by this directory already
    records->push_back(r);
    return true;
  }
}

}  // namespace tend
