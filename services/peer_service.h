// tend.v1.Peer: the part of a gathered CohortStats or ListPatients that this engine instance's
// partitions hold (services/query_service.h gathers the parts of every owner). A part is read
// only from partitions the router says this instance owns both when the call arrives and when
// the read is done: one it does not own then makes the call UNAVAILABLE (with the retry hint), so
// a gathered answer never includes a copy this directory kept of a partition that moved on. The
// offsets reported are those of the first check: the data read reflects at least them.
//
// Thread safety: thread-safe, as QueryService.
#ifndef TEND_SERVICES_PEER_SERVICE_H_
#define TEND_SERVICES_PEER_SERVICE_H_

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "auth/auth.h"
#include "projections/config.h"
#include "projections/uplift.h"
#include "services/full_scans.h"
#include "services/query_router.h"
#include "storage/storage.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

// The partitions of a part request checked against the router: each in range and owned here,
// ascending and without repeats, with the offset each is folded up to. kInvalidArgument for a
// malformed list, kUnavailable (naming the partition) for one this instance does not own now.
absl::StatusOr<std::vector<v1::PartitionOffset>> OwnedParts(const QueryRouter& router,
                                                            absl::Span<const int32_t> partitions);

class PeerService final : public v1::Peer::Service {
 public:
  // `storage` is borrowed and must outlive the service; `router` says what this instance owns.
  PeerService(const Storage* storage, projections::ProjectionConfig config,
              std::shared_ptr<QueryRouter> router)
      : storage_(storage), config_(std::move(config)), router_(std::move(router)) {}

  grpc::Status CohortPart(grpc::ServerContext* context, const v1::CohortPartRequest* request,
                          v1::CohortPartResponse* response) override;
  grpc::Status ListPart(grpc::ServerContext* context, const v1::ListPartRequest* request,
                        v1::ListPartResponse* response) override;

  // Calls must carry a token of the query role (their caller's, forwarded); unset: no check.
  // Set before serving.
  void set_authorizer(std::shared_ptr<const Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }
  // The experiments of the rules this instance runs (rules/rules.h ArmSplitsOf): CohortStats
  // compares their arms (projections/uplift.h). Every instance of a deployment must be given the
  // same ones. Set before serving.
  void set_experiments(std::vector<projections::ArmSplit> experiments) {
    experiments_ = std::move(experiments);
  }
  // As QueryService::set_full_scans: CohortPart is a read of every patient of its partitions,
  // bounded with the process's CohortStats. Set before serving.
  void set_full_scans(std::shared_ptr<FullScans> full_scans) {
    full_scans_ = std::move(full_scans);
  }

 private:
  const Storage* const storage_;
  const projections::ProjectionConfig config_;
  const std::shared_ptr<QueryRouter> router_;
  std::shared_ptr<const Authorizer> authorizer_;
  std::vector<projections::ArmSplit> experiments_;
  std::shared_ptr<FullScans> full_scans_ = std::make_shared<FullScans>();
};

}  // namespace tend

#endif  // TEND_SERVICES_PEER_SERVICE_H_
