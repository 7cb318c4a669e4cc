#include "services/query_service.h"

#include <algorithm>
#include <chrono>
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

template <typename Forward>
std::optional<grpc::Status> QueryService::Route(grpc::ServerContext* context,
                                                absl::string_view patient_id,
                                                QueryRouter::Route* route, Forward forward) {
  *route = router_->RouteOf(patient_id);
  auto unavailable = [&](const std::string& why) {
    context->AddTrailingMetadata(kRetryPushbackMetadata, "1000");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat(why, "; retry in a second (any instance)"));
  };
  switch (route->kind) {
    case QueryRouter::Route::Kind::kHere:
      context->AddTrailingMetadata(kAnsweredByMetadata, router_->self());
      context->AddTrailingMetadata(kPartitionMetadata, std::to_string(route->partition));
      context->AddTrailingMetadata(kPartitionOffsetMetadata, std::to_string(route->offset));
      return std::nullopt;
    case QueryRouter::Route::Kind::kUnavailable:
      return unavailable(route->why);
    case QueryRouter::Route::Kind::kPeer:
      break;
  }
  // One hop at most: an instance a call was forwarded to answers or says it cannot.
  if (context->client_metadata().count(kForwardedMetadata) > 0) {
    return unavailable(absl::StrCat("partition ", route->partition, " is moving (this instance, ",
                                    router_->self(), ", no longer owns it)"));
  }
  auto stub = router_->Peer(route->peer);
  if (!stub.ok()) return unavailable(std::string(stub.status().message()));
  grpc::ClientContext client;
  const auto deadline = context->deadline();
  client.set_deadline(std::min(deadline, std::chrono::system_clock::now() + std::chrono::seconds(10)));
  // The caller's own token: the owner checks it as this instance did.
  for (const auto& [key, value] : context->client_metadata()) {
    if (key == "authorization") {
      client.AddMetadata("authorization", std::string(value.data(), value.size()));
    }
  }
  client.AddMetadata(kForwardedMetadata, "1");
  grpc::Status s = forward(*stub, &client);
  for (const char* key : {kAnsweredByMetadata, kPartitionMetadata, kPartitionOffsetMetadata,
                          kRetryPushbackMetadata}) {
    auto it = client.GetServerTrailingMetadata().find(key);
    if (it != client.GetServerTrailingMetadata().end()) {
      context->AddTrailingMetadata(key, std::string(it->second.data(), it->second.size()));
    }
  }
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
      client.GetServerTrailingMetadata().count(kRetryPushbackMetadata) == 0) {
    // The owner did not answer at all (stopped, unreachable): a retry may find the new one.
    return unavailable(absl::StrCat("the owner of partition ", route->partition, ", ",
                                    route->peer, ", did not answer: ", s.error_message()));
  }
  return s;
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
  absl::StatusOr<std::optional<v1::PatientState>> state;
  if (router_ != nullptr) {
    QueryRouter::Route route;
    auto routed = Route(context, request->patient_id(), &route,
                        [&](v1::Query::StubInterface* owner, grpc::ClientContext* client) {
                          return owner->GetPatient(client, *request, response);
                        });
    if (routed.has_value()) return *routed;
    // The owned partition alone: a copy of another partition this directory keeps is stale.
    v1::PatientState found;
    auto has = storage_->GetPatient(route.partition, request->patient_id(), &found);
    if (!has.ok()) return ToGrpc(has.status());
    state = *has ? std::optional<v1::PatientState>(std::move(found)) : std::nullopt;
  } else {
    state = storage_->FindPatient(request->patient_id());
  }
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
  if (router_ != nullptr) {
    QueryRouter::Route route;
    auto routed = Route(context, request->patient_id(), &route,
                        [&](v1::Query::StubInterface* owner, grpc::ClientContext* client) {
                          return owner->Explain(client, *request, response);
                        });
    if (routed.has_value()) return *routed;
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
