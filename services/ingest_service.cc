#include "services/ingest_service.h"


#include "absl/random/random.h"
#include "absl/strings/str_format.h"
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

}  // namespace tend
