#include "services/query_service.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "engine/event_codec.h"
#include "engine/views.h"
#include "projections/patient.h"
#include "services/grpc_status.h"

namespace tend {

grpc::Status QueryService::GetPatient(grpc::ServerContext*, const v1::GetPatientRequest* request,
                                      v1::GetPatientResponse* response) {
  if (!IsValidId(request->patient_id())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "patient_id: must be 1-128 characters of [A-Za-z0-9._:-]");
  }
  if (request->has_as_of()) {
    const auto& t = request->as_of();
    if (t.seconds() < google::protobuf::util::TimeUtil::kTimestampMinSeconds ||
        t.seconds() > google::protobuf::util::TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
        t.nanos() > 999'999'999) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "as_of: not a valid timestamp (0001-01-01 to 9999-12-31)");
    }
  }
  auto state = storage_->FindPatient(request->patient_id());
  if (!state.ok()) return ToGrpc(state.status());
  if (!state->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no events folded yet for patient ", request->patient_id()));
  }
  absl::Time as_of;
  if (request->has_as_of()) {
    as_of = absl::FromUnixSeconds(request->as_of().seconds()) +
            absl::Nanoseconds(request->as_of().nanos());
  } else {
    auto clock = DefaultAsOf(*storage_, **state);
    if (!clock.ok()) return ToGrpc(clock.status());
    as_of = *clock;
  }
  *response->mutable_view() = projections::ComputeView(config_, **state, as_of);
  if (request->include_state()) *response->mutable_state() = std::move(**state);
  return grpc::Status::OK;
}

grpc::Status QueryService::Explain(grpc::ServerContext*, const v1::ExplainRequest* request,
                                   v1::ExplainResponse* response) {
  if (!IsValidId(request->patient_id())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "patient_id: must be 1-128 characters of [A-Za-z0-9._:-]");
  }
  if (request->limit() < 0 || request->limit() > 1000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: must be 0..1000 (0: 50)");
  }
  auto decisions =
      storage_->RecentDecisions(request->patient_id(), request->limit() == 0 ? 50 : request->limit());
  if (!decisions.ok()) return ToGrpc(decisions.status());
  for (auto& d : *decisions) *response->add_decisions() = std::move(d);
  return grpc::Status::OK;
}

}  // namespace tend
