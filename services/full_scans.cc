#include "services/full_scans.h"

#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/query_router.h"

namespace tend {

std::optional<FullScans::Slot> FullScans::TryTake() {
  int now = running_.load(std::memory_order_acquire);
  while (now < max_) {
    if (running_.compare_exchange_weak(now, now + 1, std::memory_order_acq_rel)) {
      return Slot(this);
    }
  }
  refused_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

grpc::Status FullScans::Refuse(grpc::ServerContext* context) const {
  context->AddTrailingMetadata(kRetryPushbackMetadata, "1000");
  return grpc::Status(
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      absl::StrCat(max_, " cohort reads (CohortStats, or a part of one gathered by another "
                         "instance) are running on this instance, its bound (tend engine "
                         "--max-cohort-scans); retry in a second"));
}

absl::Status FullScans::CallStatus(const grpc::ServerContext& context) {
  // IsCancelled is true once the call is over for any reason the handler did not give: the
  // client cancelled, its connection went, or its deadline passed. (A call without a deadline
  // has time_point::max().)
  if (context.IsCancelled()) {
    return absl::CancelledError("the caller cancelled the call or went away");
  }
  if (std::chrono::system_clock::now() > context.deadline()) {
    return absl::DeadlineExceededError("the call's deadline passed during the read");
  }
  return absl::OkStatus();
}

absl::Status FullScans::Check(const grpc::ServerContext& context,
                              const std::atomic<bool>* abandoned) {
  absl::Status s = abandoned != nullptr && abandoned->load(std::memory_order_acquire)
                       ? absl::AbortedError("another instance's part failed")
                       : CallStatus(context);
  if (!s.ok()) stopped_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

}  // namespace tend
