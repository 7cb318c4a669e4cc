#include "services/query_service.h"

#include "absl/strings/str_cat.h"
#include "engine/event_codec.h"
#include "services/grpc_status.h"

namespace tend {

grpc::Status QueryService::GetPatient(grpc::ServerContext*, const v1::GetPatientRequest* request,
                                      v1::GetPatientResponse* response) {
  if (!IsValidId(request->patient_id())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "patient_id: must be 1-128 characters of [A-Za-z0-9._:-]");
  }
  auto state = storage_->FindPatient(request->patient_id());
  if (!state.ok()) return ToGrpc(state.status());
  if (!state->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no events folded yet for patient ", request->patient_id()));
  }
  *response->mutable_state() = std::move(**state);
  return grpc::Status::OK;
}

}  // namespace tend
