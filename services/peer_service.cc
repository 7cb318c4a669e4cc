#include "services/peer_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/time.h"
#include "events/codec.h"
#include "index/planner.h"
#include "projections/cohort.h"
#include "services/grpc_status.h"
#include "storage/views.h"

namespace tend {
namespace {

// An UNAVAILABLE the gathering instance passes on as "retry" (services/query_service.cc).
grpc::Status Moving(grpc::ServerContext* context, const absl::Status& s) {
  if (s.code() == absl::StatusCode::kUnavailable) {
    context->AddTrailingMetadata(kRetryPushbackMetadata, "1000");
  }
  return ToGrpc(s);
}

}  // namespace

absl::StatusOr<std::vector<v1::PartitionOffset>> OwnedParts(const QueryRouter& router,
                                                            absl::Span<const int32_t> partitions) {
  for (size_t i = 0; i < partitions.size(); ++i) {
    const int32_t p = partitions[i];
    if (p < 0 || p >= router.partitions() || (i > 0 && p <= partitions[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "partitions: must be ascending, without repeats, each in 0..", router.partitions() - 1));
    }
  }
  std::vector<v1::PartitionOffset> owned;
  for (const int32_t p : partitions) {
    const QueryRouter::Route route = router.RouteOfPartition(p);
    if (route.kind != QueryRouter::Route::Kind::kHere) {
      return absl::UnavailableError(absl::StrCat("partition ", p, " is moving (", router.self(),
                                                 " does not own it now)"));
    }
    v1::PartitionOffset o;
    o.set_partition(p);
    o.set_next_offset(route.offset);
    owned.push_back(o);
  }
  return owned;
}

grpc::Status PeerService::CohortPart(grpc::ServerContext* context,
                                     const v1::CohortPartRequest* request,
                                     v1::CohortPartResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
  std::optional<absl::Time> as_of;
  if (request->has_as_of()) {
    if (grpc::Status s = ToGrpc(CheckProtoTime(request->as_of(), "as_of")); !s.ok()) return s;
    as_of = FromProtoTime(request->as_of());
  }
  auto owned = OwnedParts(*router_, request->partitions());
  if (!owned.ok()) return Moving(context, owned.status());
  const std::optional<FullScans::Slot> slot = full_scans_->TryTake();
  if (!slot.has_value()) return full_scans_->Refuse(context);
  projections::CohortAccumulator acc(config_, experiments_);
  const std::vector<int32_t> partitions(request->partitions().begin(),
                                        request->partitions().end());
  auto resolver = AsOfResolver::Load(*storage_, as_of);
  if (!resolver.ok()) return ToGrpc(resolver.status());
  if (absl::Status s = AccumulateCohort(*storage_, config_, *resolver, &partitions, &acc,
                                        [&] { return full_scans_->Check(*context); });
      !s.ok()) {
    return ToGrpc(s);
  }
  // Still owned after the read (which may take a while): else another instance may have folded
  // past the copy read here.
  if (auto still = OwnedParts(*router_, request->partitions()); !still.ok()) {
    return Moving(context, still.status());
  }
  *response->mutable_partial() = acc.ToPartial();
  for (auto& o : *owned) *response->add_offsets() = std::move(o);
  return grpc::Status::OK;
}

grpc::Status PeerService::ListPart(grpc::ServerContext* context,
                                   const v1::ListPartRequest* request,
                                   v1::ListPartResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
  auto owned = OwnedParts(*router_, request->partitions());
  if (!owned.ok()) return Moving(context, owned.status());
  const std::vector<int32_t> partitions(request->partitions().begin(),
                                        request->partitions().end());
  if (request->max_examined() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "max_examined: must be 0 or more");
  }
  ListPatientsCost cost;
  if (absl::Status s =
          ListPatientsPage(*storage_, config_, request->request(), response->mutable_response(),
                           &cost, &partitions, request->max_examined());
      !s.ok()) {
    return ToGrpc(s);
  }
  response->set_examined(cost.examined);
  if (auto still = OwnedParts(*router_, request->partitions()); !still.ok()) {
    return Moving(context, still.status());
  }
  for (auto& o : *owned) *response->add_offsets() = std::move(o);
  return grpc::Status::OK;
}

}  // namespace tend
