// tend.v1.Query: reads committed patient state for backend services and views it at an as-of.
// Thread-safe: reads go straight to RocksDB; the config is immutable.
#ifndef TEND_SERVICES_QUERY_SERVICE_H_
#define TEND_SERVICES_QUERY_SERVICE_H_

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "auth/auth.h"
#include "index/planner.h"
#include "storage/storage.h"
#include "projections/config.h"
#include "projections/uplift.h"
#include "services/full_scans.h"
#include "services/query_router.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

class QueryService final : public v1::Query::Service {
 public:
  // `storage` is borrowed and must outlive the service; `config` is the one the engine folds
  // with (storage/views.h ConfigForReading for a reader of another process's directory).
  QueryService(const Storage* storage, projections::ProjectionConfig config)
      : storage_(storage), config_(std::move(config)) {}

  grpc::Status GetPatient(grpc::ServerContext* context, const v1::GetPatientRequest* request,
                          v1::GetPatientResponse* response) override;
  grpc::Status Explain(grpc::ServerContext* context, const v1::ExplainRequest* request,
                       v1::ExplainResponse* response) override;
  grpc::Status CohortStats(grpc::ServerContext* context, const v1::CohortStatsRequest* request,
                           v1::CohortStatsResponse* response) override;
  grpc::Status ListPatients(grpc::ServerContext* context, const v1::ListPatientsRequest* request,
                            v1::ListPatientsResponse* response) override;

  // Calls must carry a token of this service's role (auth/auth.h); unset: no token check.
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
  // Several instances (services/query_router.h): GetPatient and Explain are answered by the
  // owner of the patient's partition - here from that partition alone, or forwarded - with
  // trailing metadata naming the instance that answered and the partition's offset; UNAVAILABLE
  // with a retry hint when no instance owns it now. CohortStats and ListPatients are gathered
  // from the owners of every partition (tend.v1.Peer, services/peer_service.h), with trailing
  // metadata naming the instances that answered and each partition's offset; UNAVAILABLE with a
  // retry hint while a partition they need has no owner. A ListPatients page token names the
  // partition the walk stopped in, so paging goes on there whoever owns it by then. Unset:
  // answered from this directory. Set before serving.
  void set_router(std::shared_ptr<QueryRouter> router) { router_ = std::move(router); }
  // The bound on CohortStats reads running at once (services/full_scans.h), shared with the
  // process's PeerService. Unset: one of this service's own, of FullScans::kDefaultMax. A read
  // stops when its caller cancels or its deadline passes. Set before serving.
  void set_full_scans(std::shared_ptr<FullScans> full_scans) {
    full_scans_ = std::move(full_scans);
  }
  // Without a router: the partitions this directory's engine refuses, with why
  // (engine/engine.h, "Refused partitions"). Their copy is not answered from: GetPatient and
  // Explain of a patient found there, or found nowhere while one is refused, and CohortStats and
  // ListPatients while one is, are UNAVAILABLE naming it. (With a router, the router does it.)
  // Unset: none. Set before serving.
  using RefusedFn = std::function<std::vector<std::pair<int32_t, std::string>>()>;
  void set_refused(RefusedFn refused) { refused_ = std::move(refused); }

 private:
  // Without a router: UNAVAILABLE when a refused partition is `partition` (nullopt: any).
  std::optional<grpc::Status> Refused(std::optional<int32_t> partition) const;
  // The same for a patient looked up in the directory: its partition's refusal when found, any
  // refusal when not found (a refused partition may hold it).
  std::optional<grpc::Status> RefusedFor(const std::optional<v1::PatientState>& found) const {
    return Refused(found.has_value() ? std::optional<int32_t>(found->partition()) : std::nullopt);
  }

  // With a router: the patient's route, or the status to answer with (forwarded to the owner,
  // or UNAVAILABLE) when it is not answered here. `forward(stub, client_context)` makes the
  // call to the owner.
  // With a router: CohortStats from every owner's part (each read at once), and ListPatients
  // walked partition by partition, each run of partitions read by its owner.
  grpc::Status GatherCohortStats(grpc::ServerContext* context,
                                 const v1::CohortStatsRequest& request,
                                 v1::CohortStatsResponse* response);
  grpc::Status GatherListPatients(grpc::ServerContext* context,
                                  const v1::ListPatientsRequest& request,
                                  v1::ListPatientsResponse* response);
  template <typename Forward>
  std::optional<grpc::Status> Route(grpc::ServerContext* context, absl::string_view patient_id,
                                    QueryRouter::Route* route, Forward forward);

  const Storage* const storage_;
  const projections::ProjectionConfig config_;
  std::shared_ptr<const Authorizer> authorizer_;
  std::vector<projections::ArmSplit> experiments_;
  std::shared_ptr<QueryRouter> router_;
  RefusedFn refused_;
  std::shared_ptr<FullScans> full_scans_ = std::make_shared<FullScans>();
};

// tend.v1.Query while there is no state to answer from (the state directory was refused): every
// call is UNAVAILABLE with `why`, so a caller retries elsewhere rather than reading nothing - once
// it shows a token of the query role, as it would to the service proper (the reason names the
// directory and the storage's error, nothing for a caller without a token).
class UnavailableQueryService final : public v1::Query::Service {
 public:
  explicit UnavailableQueryService(std::string why) : why_(std::move(why)) {}
  // As QueryService::set_authorizer; unset: no token check.
  void set_authorizer(std::shared_ptr<const Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }
  grpc::Status GetPatient(grpc::ServerContext* context, const v1::GetPatientRequest*,
                          v1::GetPatientResponse*) override {
    return Unavailable(context);
  }
  grpc::Status Explain(grpc::ServerContext* context, const v1::ExplainRequest*,
                       v1::ExplainResponse*) override {
    return Unavailable(context);
  }
  grpc::Status CohortStats(grpc::ServerContext* context, const v1::CohortStatsRequest*,
                           v1::CohortStatsResponse*) override {
    return Unavailable(context);
  }
  grpc::Status ListPatients(grpc::ServerContext* context, const v1::ListPatientsRequest*,
                            v1::ListPatientsResponse*) override {
    return Unavailable(context);
  }

 private:
  grpc::Status Unavailable(const grpc::ServerContext* context) const {
    if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kQuery); !s.ok()) return s;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, why_);
  }
  const std::string why_;
  std::shared_ptr<const Authorizer> authorizer_;
};

}  // namespace tend

#endif  // TEND_SERVICES_QUERY_SERVICE_H_
