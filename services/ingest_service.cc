#include "services/ingest_service.h"

#include <memory>
#include <optional>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/time.h"
#include "services/grpc_status.h"

namespace tend {

absl::Status PrepareForLog(v1::Event* event, absl::Time now, const ValidationOptions& validation) {
  if (event->event_id().empty()) {
    thread_local absl::BitGen gen;
    event->set_event_id(absl::StrFormat("ev-%016x%016x", absl::Uniform<uint64_t>(gen),
                                        absl::Uniform<uint64_t>(gen)));
  }
  *event->mutable_recorded_at() = ToProtoTime(now);
  // What the engine would dead-letter is refused here, before it is acknowledged.
  if (event->ByteSizeLong() > kMaxEventBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event: ", event->ByteSizeLong(), " bytes serialized; at most ", kMaxEventBytes));
  }
  return ValidateEvent(*event, validation);
}

grpc::Status IngestService::Append(grpc::ServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kIngest); !s.ok()) return s;
  if (!request->has_event()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "event: is required");
  }
  v1::Event event = request->event();
  if (absl::Status s = PrepareForLog(&event, absl::Now(), validation_); !s.ok()) {
    return ToGrpc(s, "event.");
  }
  std::string value = event.SerializeAsString();
  auto headers = EventHeaders(event);
  Delivery d = producer_->ProduceSync(topic_, event.patient_id(), value, headers);
  if (!d.status.ok()) return ToGrpc(d.status);
  response->set_event_id(event.event_id());
  response->set_partition(d.partition);
  response->set_offset(d.offset);
  *response->mutable_recorded_at() = event.recorded_at();
  return grpc::Status::OK;
}

grpc::Status IngestService::AppendBatch(grpc::ServerContext* context,
                                        const v1::AppendBatchRequest* request,
                                        v1::AppendBatchResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kIngest); !s.ok()) return s;
  const int n = request->events_size();
  if (n > kMaxBatchEvents) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("events: ", n, " in one batch; at most ", kMaxBatchEvents,
                                     " (split it)"));
  }
  const absl::Time now = absl::Now();
  // Every good event is enqueued at once; the broker's acknowledgements arrive on the
  // producer's thread. The call waits for them until its deadline (at most batch_wait_); what is
  // still unacknowledged then is answered UNAVAILABLE (send it again: same event_id, no
  // duplicate), and its late report lands in `pending`, which the callbacks share.
  struct Pending {
    absl::Mutex mu;
    int waiting ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::optional<Delivery>> deliveries ABSL_GUARDED_BY(mu);  // unset: no report yet
  };
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->deliveries.resize(static_cast<size_t>(n));
  }
  std::vector<v1::Event> events(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto* result = response->add_results();
    v1::Event& event = events[static_cast<size_t>(i)];
    event = request->events(i);
    if (absl::Status s = PrepareForLog(&event, now, validation_); !s.ok()) {
      const grpc::Status refused = ToGrpc(s, absl::StrCat("events[", i, "]."));
      result->set_code(refused.error_code());
      result->set_error(refused.error_message());
      continue;
    }
    {
      absl::MutexLock lock(&pending->mu);
      ++pending->waiting;
    }
    const size_t index = static_cast<size_t>(i);
    absl::Status enqueued =
        ProduceEvent(producer_, topic_, event, [pending, index](const Delivery& d) {
          absl::MutexLock lock(&pending->mu);
          pending->deliveries[index] = d;
          --pending->waiting;
        });
    if (!enqueued.ok()) {
      absl::MutexLock lock(&pending->mu);
      --pending->waiting;
      pending->deliveries[index] = Delivery{enqueued};
    }
  }
  const absl::Time deadline =
      std::min(absl::FromChrono(context->deadline()), now + batch_wait_);
  absl::MutexLock lock(&pending->mu);
  pending->mu.AwaitWithDeadline(
      absl::Condition(+[](int* waiting) { return *waiting == 0; }, &pending->waiting), deadline);
  for (int i = 0; i < n; ++i) {
    const size_t index = static_cast<size_t>(i);
    auto* result = response->mutable_results(i);
    if (result->code() != 0) continue;  // refused above
    if (!pending->deliveries[index].has_value()) {
      result->set_code(static_cast<int>(grpc::StatusCode::UNAVAILABLE));
      result->set_error(absl::StrCat("events[", i, "]: not acknowledged by the broker in time; "
                                     "send it again (same event_id: no duplicate)"));
      continue;
    }
    const Delivery& d = *pending->deliveries[index];
    const v1::Event& event = events[index];
    if (!d.status.ok()) {
      const grpc::Status failed = ToGrpc(d.status);
      result->set_code(failed.error_code());
      result->set_error(absl::StrCat("events[", i, "]: ", failed.error_message()));
      continue;
    }
    auto* appended = result->mutable_appended();
    appended->set_event_id(event.event_id());
    appended->set_partition(d.partition);
    appended->set_offset(d.offset);
    *appended->mutable_recorded_at() = event.recorded_at();
  }
  return grpc::Status::OK;
}

}  // namespace tend
