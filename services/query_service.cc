#include "services/query_service.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "events/codec.h"
#include "storage/views.h"
#include "projections/patient.h"
#include "services/grpc_status.h"

namespace tend {

grpc::Status QueryService::CohortStats(grpc::ServerContext* context,
                                       const v1::CohortStatsRequest* request,
                                       v1::CohortStatsResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
  std::optional<absl::Time> as_of;
  if (request->has_as_of()) {
    if (grpc::Status s = ToGrpc(CheckProtoTime(request->as_of(), "as_of")); !s.ok()) return s;
    as_of = FromProtoTime(request->as_of());
  }
  auto stats = ComputeCohortStats(*storage_, config_, as_of);
  if (!stats.ok()) return ToGrpc(stats.status());
  *response->mutable_stats() = *std::move(stats);
  return grpc::Status::OK;
}

grpc::Status QueryService::GetPatient(grpc::ServerContext* context,
                                      const v1::GetPatientRequest* request,
                                      v1::GetPatientResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
  if (grpc::Status s = ToGrpc(CheckIdArgument("patient_id", request->patient_id())); !s.ok()) {
    return s;
  }
  if (request->has_as_of()) {
    if (grpc::Status s = ToGrpc(CheckProtoTime(request->as_of(), "as_of")); !s.ok()) return s;
  }
  auto state = storage_->FindPatient(request->patient_id());
  if (!state.ok()) return ToGrpc(state.status());
  if (!state->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no events folded yet for patient ", request->patient_id()));
  }
  absl::Time as_of;
  if (request->has_as_of()) {
    as_of = FromProtoTime(request->as_of());
  } else {
    auto clock = DefaultAsOf(*storage_, **state);
    if (!clock.ok()) return ToGrpc(clock.status());
    as_of = *clock;
  }
  *response->mutable_view() = projections::ComputeView(config_, **state, as_of);
  if (request->include_state()) *response->mutable_state() = std::move(**state);
  return grpc::Status::OK;
}

grpc::Status QueryService::Explain(grpc::ServerContext* context,
                                   const v1::ExplainRequest* request,
                                   v1::ExplainResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
  if (grpc::Status s = ToGrpc(CheckIdArgument("patient_id", request->patient_id())); !s.ok()) {
    return s;
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

grpc::Status QueryService::ListPatients(grpc::ServerContext* context,
                                        const v1::ListPatientsRequest* request,
                                        v1::ListPatientsResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
  ListPatientsCost cost;
  if (absl::Status s = ListPatientsPage(*storage_, config_, *request, response, &cost); !s.ok()) {
    return ToGrpc(s);
  }
  // What the page cost, for operators and tests: the index entries examined to fill it, and the
  // index kind walked.
  context->AddTrailingMetadata("tend-candidates-examined", std::to_string(cost.examined));
  context->AddTrailingMetadata("tend-index", std::string(1, cost.index_kind));
  return grpc::Status::OK;
}

}  // namespace tend
