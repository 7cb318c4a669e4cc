#include "services/query_service.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "engine/event_codec.h"
#include "engine/views.h"
#include "projections/patient.h"
#include "services/grpc_status.h"

namespace tend {

namespace {

// INVALID_ARGUMENT naming `field` unless `t` is a valid google.protobuf.Timestamp.
grpc::Status CheckTimestamp(const google::protobuf::Timestamp& t, const char* field) {
  if (t.seconds() < google::protobuf::util::TimeUtil::kTimestampMinSeconds ||
      t.seconds() > google::protobuf::util::TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
      t.nanos() > 999'999'999) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat(field, ": not a valid timestamp (0001-01-01 to 9999-12-31)"));
  }
  return grpc::Status::OK;
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace

grpc::Status QueryService::CohortStats(grpc::ServerContext*,
                                       const v1::CohortStatsRequest* request,
                                       v1::CohortStatsResponse* response) {
  std::optional<absl::Time> as_of;
  if (request->has_as_of()) {
    if (grpc::Status s = CheckTimestamp(request->as_of(), "as_of"); !s.ok()) return s;
    as_of = FromProto(request->as_of());
  }
  auto stats = ComputeCohortStats(*storage_, config_, as_of);
  if (!stats.ok()) return ToGrpc(stats.status());
  *response->mutable_stats() = *std::move(stats);
  return grpc::Status::OK;
}

grpc::Status QueryService::GetPatient(grpc::ServerContext*, const v1::GetPatientRequest* request,
                                      v1::GetPatientResponse* response) {
  if (!IsValidId(request->patient_id())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "patient_id: must be 1-128 characters of [A-Za-z0-9._:-]");
  }
  if (request->has_as_of()) {
    if (grpc::Status s = CheckTimestamp(request->as_of(), "as_of"); !s.ok()) return s;
  }
  auto state = storage_->FindPatient(request->patient_id());
  if (!state.ok()) return ToGrpc(state.status());
  if (!state->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no events folded yet for patient ", request->patient_id()));
  }
  absl::Time as_of;
  if (request->has_as_of()) {
    as_of = FromProto(request->as_of());
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
