#include "services/ingest_service.h"

#include <memory>
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
  if (request->events_size() > kMaxBatchEvents) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("events: ", request->events_size(), " in one batch; at most ",
                                     kMaxBatchEvents, " (split it)"));
  }
  const absl::Time now = absl::Now();
  // Every good event is enqueued at once; the broker's acknowledgements arrive on the
  // producer's thread, and the call answers when all of them have.
  struct Pending {
    absl::Mutex mu;
    int waiting ABSL_GUARDED_BY(mu) = 0;
  };
  auto pending = std::make_shared<Pending>();
  std::vector<Delivery> deliveries(static_cast<size_t>(request->events_size()));
  std::vector<v1::Event> events(static_cast<size_t>(request->events_size()));
  for (int i = 0; i < request->events_size(); ++i) {
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
    Delivery* delivery = &deliveries[static_cast<size_t>(i)];
    absl::Status enqueued =
        ProduceEvent(producer_, topic_, event, [pending, delivery](const Delivery& d) {
          absl::MutexLock lock(&pending->mu);
          *delivery = d;
          --pending->waiting;
        });
    if (!enqueued.ok()) {
      absl::MutexLock lock(&pending->mu);
      --pending->waiting;
      delivery->status = enqueued;
    }
  }
  {
    // librdkafka reports every record it took, delivered or failed for good (its
    // message.timeout.ms), so this wait ends; the caller's deadline does not shorten it, or
    // the reports would land in freed memory.
    absl::MutexLock lock(&pending->mu);
    pending->mu.Await(absl::Condition(
        +[](int* waiting) { return *waiting == 0; }, &pending->waiting));
  }
  for (int i = 0; i < request->events_size(); ++i) {
    auto* result = response->mutable_results(i);
    if (result->code() != 0) continue;
    const Delivery& d = deliveries[static_cast<size_t>(i)];
    const v1::Event& event = events[static_cast<size_t>(i)];
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
