#include "services/query_service.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/time.h"
#include "events/codec.h"
#include "storage/views.h"
#include "projections/patient.h"
#include "services/grpc_status.h"
#include "services/peer_service.h"

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
  // One read of every patient (with a router: this instance's part, and the peers' calls).
  const std::optional<FullScans::Slot> slot = full_scans_->TryTake();
  if (!slot.has_value()) return full_scans_->Refuse(context);
  if (router_ != nullptr) return GatherCohortStats(context, *request, response);
  if (auto refused = Refused(std::nullopt); refused.has_value()) return *refused;
  auto resolver = AsOfResolver::Load(*storage_, as_of);
  if (!resolver.ok()) return ToGrpc(resolver.status());
  projections::CohortAccumulator acc(config_, experiments_);
  if (absl::Status s = AccumulateCohort(*storage_, config_, *resolver, nullptr, &acc,
                                        [&] { return full_scans_->Check(*context); });
      !s.ok()) {
    return ToGrpc(s);
  }
  *response->mutable_stats() = acc.Finish();
  return grpc::Status::OK;
}

namespace {

// A call to another instance on behalf of `context`'s caller: its token (the owner checks it as
// this instance did), the mark that it was forwarded, and the caller's deadline, at most `limit`.
void ForwardFrom(const grpc::ServerContext& context, absl::Time limit,
                 grpc::ClientContext* client) {
  client->set_deadline(std::min(context.deadline(), absl::ToChronoTime(limit)));
  for (const auto& [key, value] : context.client_metadata()) {
    if (key == "authorization") {
      client->AddMetadata("authorization", std::string(value.data(), value.size()));
    }
  }
  client->AddMetadata(kForwardedMetadata, "1");
}

grpc::Status RetryLater(grpc::ServerContext* context, absl::string_view why) {
  context->AddTrailingMetadata(kRetryPushbackMetadata, "1000");
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat(why, "; retry in a second (any instance)"));
}

}  // namespace

std::optional<grpc::Status> QueryService::Refused(std::optional<int32_t> partition) const {
  if (!refused_) return std::nullopt;
  for (const auto& [p, why] : refused_()) {
    if (!partition.has_value() || *partition == p) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("partition ", p, " is refused by this instance (", why,
                                       "); its copy is not answered from"));
    }
  }
  return std::nullopt;
}

namespace {

// A peer's failed part (its call `client`) as the gathered call's answer: UNAVAILABLE (retry)
// when the peer did not answer or no longer owns a partition; RESOURCE_EXHAUSTED naming the
// peer, with the retry hint when the peer gave one (its bound on cohort reads; gRPC's own, a
// message too large, has none); its own error otherwise (a bad argument, say).
grpc::Status PartFailed(grpc::ServerContext* context, const std::string& peer,
                        const grpc::Status& s, const grpc::ClientContext& client) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return RetryLater(context, absl::StrCat(peer, " did not give its part: ", s.error_message()));
  }
  if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    if (client.GetServerTrailingMetadata().count(kRetryPushbackMetadata) > 0) {
      context->AddTrailingMetadata(kRetryPushbackMetadata, "1000");
    }
    return grpc::Status(s.error_code(), absl::StrCat(peer, ": ", s.error_message()));
  }
  return s;
}

// A peer's part must answer for exactly the partitions asked of it, each once: one that answers
// for others (a bug, or an address that is no instance of this deployment) would pass for the
// whole. INTERNAL naming both.
grpc::Status CheckPartPartitions(const std::string& peer,
                                 const google::protobuf::RepeatedPtrField<v1::PartitionOffset>& got,
                                 const std::vector<int32_t>& asked) {
  std::vector<int32_t> answered;
  answered.reserve(static_cast<size_t>(got.size()));
  for (const v1::PartitionOffset& o : got) answered.push_back(o.partition());
  std::sort(answered.begin(), answered.end());
  std::vector<int32_t> want = asked;
  std::sort(want.begin(), want.end());
  if (answered == want) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      absl::StrCat("the part from ", peer, " answers for partitions [",
                                   absl::StrJoin(answered, ","), "], not the [",
                                   absl::StrJoin(want, ","), "] asked of it"));
}

// The partitions and offsets a gathered answer reflects, as "partition:offset,..." (trailing
// metadata tend-partition-offsets), and the instances that answered, comma-separated.
void GatheredTrailers(grpc::ServerContext* context, const std::set<std::string>& answered,
                      const std::vector<v1::PartitionOffset>& offsets) {
  context->AddTrailingMetadata(kAnsweredByMetadata, absl::StrJoin(answered, ","));
  context->AddTrailingMetadata(
      kPartitionOffsetsMetadata,
      absl::StrJoin(offsets, ",", [](std::string* out, const v1::PartitionOffset& o) {
        absl::StrAppend(out, o.partition(), ":", o.next_offset());
      }));
}

// A CohortStats over all of a cluster is a full read of every instance: minutes at most.
constexpr absl::Duration kGatherLimit = absl::Minutes(10);

}  // namespace

grpc::Status QueryService::GatherCohortStats(grpc::ServerContext* context,
                                             const v1::CohortStatsRequest& request,
                                             v1::CohortStatsResponse* response) {
  std::optional<absl::Time> as_of;
  if (request.has_as_of()) as_of = FromProtoTime(request.as_of());
  // Every partition's owner, now: one without an owner fails the whole answer (a cohort
  // missing some partitions would pass for the whole).
  std::map<std::string, std::vector<int32_t>> by_owner;  // peer address ("": here)
  for (int32_t p = 0; p < router_->partitions(); ++p) {
    const QueryRouter::Route route = router_->RouteOfPartition(p);
    if (route.kind == QueryRouter::Route::Kind::kUnavailable) return RetryLater(context, route.why);
    by_owner[route.kind == QueryRouter::Route::Kind::kHere ? "" : route.peer].push_back(p);
  }
  struct Part {
    std::string owner;
    std::vector<int32_t> partitions;
    grpc::Status status;
    v1::CohortPartResponse response;
    std::unique_ptr<grpc::ClientContext> client;  // a peer's call
  };
  std::vector<Part> parts;
  std::vector<v1::Peer::StubInterface*> stubs;
  std::vector<v1::PartitionOffset> offsets;
  for (auto& [owner, partitions] : by_owner) {
    parts.push_back({owner, std::move(partitions), grpc::Status::OK, {}, nullptr});
    stubs.push_back(nullptr);
    if (owner.empty()) {
      // Still here (checked again after the read).
      auto owned = OwnedParts(*router_, parts.back().partitions);
      if (!owned.ok()) return RetryLater(context, owned.status().message());
      offsets.insert(offsets.end(), owned->begin(), owned->end());
      continue;
    }
    auto peer = router_->Peer(owner);
    if (!peer.ok()) return RetryLater(context, peer.status().message());
    stubs.back() = peer->parts;
  }
  // The peers read their parts at once, each on a thread of its own, while this one reads its.
  // What their calls have come to: how many answered, and the first that failed.
  struct Calls {
    absl::Mutex mu;
    size_t total = 0;
    size_t answered ABSL_GUARDED_BY(mu) = 0;
    std::optional<size_t> first_failed ABSL_GUARDED_BY(mu);  // an index into `parts`
    std::atomic<bool> failed{false};  // first_failed is set (read by this part's read)
    bool Settled() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return answered == total || first_failed.has_value();
    }
  } progress;
  const absl::Time limit = absl::Now() + kGatherLimit;
  std::vector<std::thread> calls;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].owner.empty()) continue;
    parts[i].client = std::make_unique<grpc::ClientContext>();
    ForwardFrom(*context, limit, parts[i].client.get());
    ++progress.total;
    calls.emplace_back([&part = parts[i], i, &request, &progress, parts_stub = stubs[i]] {
      v1::CohortPartRequest part_request;
      if (request.has_as_of()) *part_request.mutable_as_of() = request.as_of();
      for (int32_t p : part.partitions) part_request.add_partitions(p);
      part.status = parts_stub->CohortPart(part.client.get(), part_request, &part.response);
      absl::MutexLock lock(&progress.mu);
      ++progress.answered;
      if (!part.status.ok() && !progress.first_failed.has_value()) {
        progress.first_failed = i;
        progress.failed.store(true, std::memory_order_release);
      }
    });
  }
  projections::CohortAccumulator acc(config_, experiments_);
  absl::Status local;
  // A part that failed fails the whole: this read stops at its next check too.
  auto check = [&] { return full_scans_->Check(*context, &progress.failed); };
  for (Part& part : parts) {
    if (!part.owner.empty()) continue;
    auto resolver = AsOfResolver::Load(*storage_, as_of);
    local = resolver.ok()
                ? AccumulateCohort(*storage_, config_, *resolver, &part.partitions, &acc, check)
                : resolver.status();
    if (local.ok()) local = OwnedParts(*router_, part.partitions).status();
  }
  // The peers' reads go on while the whole can still be answered: when this call's caller
  // cancels or goes, when this part failed, or when one of theirs did, the others are cancelled
  // (a peer stops its read at its next check; one of a version before the bound reads on).
  bool cancel = !local.ok();
  while (!cancel) {
    absl::MutexLock lock(&progress.mu);
    progress.mu.AwaitWithTimeout(absl::Condition(&progress, &Calls::Settled),
                                 absl::Milliseconds(20));
    if (progress.answered == progress.total) break;
    cancel = progress.first_failed.has_value() || !FullScans::CallStatus(*context).ok();
  }
  if (cancel) {
    for (Part& part : parts) {
      if (part.client != nullptr) part.client->TryCancel();
    }
  }
  for (std::thread& t : calls) t.join();
  std::optional<size_t> first_failed;
  {
    absl::MutexLock lock(&progress.mu);
    first_failed = progress.first_failed;
  }
  // This part's own failure, unless it stopped for a peer's: then the peer's is the answer.
  if (!local.ok() && !(local.code() == absl::StatusCode::kAborted && first_failed.has_value())) {
    return local.code() == absl::StatusCode::kUnavailable ? RetryLater(context, local.message())
                                                          : ToGrpc(local);
  }
  if (first_failed.has_value()) {
    const Part& failed = parts[*first_failed];
    return PartFailed(context, failed.owner, failed.status, *failed.client);
  }
  std::set<std::string> answered;
  for (Part& part : parts) {
    const std::string owner = part.owner.empty() ? router_->self() : part.owner;
    answered.insert(owner);
    if (part.owner.empty()) continue;
    if (grpc::Status s = CheckPartPartitions(part.owner, part.response.offsets(), part.partitions);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = acc.Merge(part.response.partial()); !s.ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("the part from ", part.owner, ": ", s.message(),
                                       " (are the instances of one version?)"));
    }
    offsets.insert(offsets.end(), part.response.offsets().begin(), part.response.offsets().end());
  }
  std::sort(offsets.begin(), offsets.end(),
            [](const auto& a, const auto& b) { return a.partition() < b.partition(); });
  GatheredTrailers(context, answered, offsets);
  *response->mutable_stats() = acc.Finish();
  return grpc::Status::OK;
}

grpc::Status QueryService::GatherListPatients(grpc::ServerContext* context,
                                              const v1::ListPatientsRequest& request,
                                              v1::ListPatientsResponse* response) {
  // The request checked as a lone engine checks it (a walk of no partition).
  {
    v1::ListPatientsResponse none;
    const std::vector<int32_t> no_partitions;
    if (absl::Status s =
            ListPatientsPage(*storage_, config_, request, &none, nullptr, &no_partitions);
        !s.ok()) {
      return ToGrpc(s);
    }
  }
  // The walk goes partition by partition in order, each run of partitions with one owner read
  // by that owner, until the page is full; the token names the partition the walk stopped in,
  // so the next page goes on there, whoever owns it then.
  const int32_t partitions = router_->partitions();
  int32_t p = 0;
  std::string token = request.page_token();
  if (!token.empty()) {
    auto at = ListPatientsTokenPartition(request);
    if (!at.ok()) return ToGrpc(at.status());
    if (*at >= partitions) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_token: not a token this deployment issued");
    }
    p = *at;
  }
  int remaining = request.page_size() == 0 ? 50 : request.page_size();
  // One bound on the index entries examined for the whole page, as a lone engine's page has,
  // however many runs of partitions it reads (each run had a bound of its own: one page over
  // 32 partitions owned in turn by two instances could read 32 times as many states).
  int64_t budget = ListPatientsMaxExamined(request.page_size());
  int64_t total_examined = 0;
  std::set<std::string> answered;
  std::vector<v1::PartitionOffset> offsets;
  // One limit for the whole page, however many runs it reads.
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (p < partitions && remaining > 0 && budget > 0) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    const QueryRouter::Route route = router_->RouteOfPartition(p);
    // A partition nobody owns now: the whole page waits (its patients would be missing from
    // it, or read from a stale copy). The token the caller holds stays good.
    if (route.kind == QueryRouter::Route::Kind::kUnavailable) return RetryLater(context, route.why);
    std::vector<int32_t> run = {p};
    while (run.back() + 1 < partitions) {
      const QueryRouter::Route next = router_->RouteOfPartition(run.back() + 1);
      if (next.kind != route.kind || next.peer != route.peer) break;
      run.push_back(run.back() + 1);
    }
    v1::ListPatientsRequest sub = request;
    sub.set_page_size(remaining);
    sub.set_page_token(token);
    v1::ListPartResponse part;
    if (route.kind == QueryRouter::Route::Kind::kHere) {
      auto owned = OwnedParts(*router_, run);
      if (!owned.ok()) return RetryLater(context, owned.status().message());
      ListPatientsCost cost;
      if (absl::Status s = ListPatientsPage(*storage_, config_, sub, part.mutable_response(),
                                            &cost, &run, budget);
          !s.ok()) {
        return ToGrpc(s);
      }
      part.set_examined(cost.examined);
      // Still here after the read: else the copy read may be one another instance moved on.
      if (auto still = OwnedParts(*router_, run); !still.ok()) {
        return RetryLater(context, still.status().message());
      }
      for (auto& o : *owned) *part.add_offsets() = std::move(o);
      answered.insert(router_->self());
    } else {
      auto stubs = router_->Peer(route.peer);
      if (!stubs.ok()) return RetryLater(context, stubs.status().message());
      grpc::ClientContext client;
      ForwardFrom(*context, limit, &client);
      v1::ListPartRequest part_request;
      *part_request.mutable_request() = std::move(sub);
      for (int32_t q : run) part_request.add_partitions(q);
      part_request.set_max_examined(budget);
      grpc::Status s = stubs->parts->ListPart(&client, part_request, &part);
      if (!s.ok()) return PartFailed(context, route.peer, s, client);
      if (s = CheckPartPartitions(route.peer, part.offsets(), run); !s.ok()) return s;
      answered.insert(route.peer);
    }
    v1::ListPatientsResponse& got = *part.mutable_response();
    remaining -= got.patients_size();
    // A part that examined more than it was given leaves nothing for the next run. (An
    // instance older than the bound examines its own and reports 0: pages bounded as before.)
    const int64_t examined = std::max<int64_t>(part.examined(), 0);
    budget -= examined;
    total_examined += examined;
    for (auto& view : *got.mutable_patients()) *response->add_patients() = std::move(view);
    offsets.insert(offsets.end(), part.offsets().begin(), part.offsets().end());
    if (!got.next_page_token().empty()) {
      // The owner stopped inside its run (the page is full, or it examined its bound).
      response->set_next_page_token(got.next_page_token());
      GatheredTrailers(context, answered, offsets);
      context->AddTrailingMetadata(kCandidatesExaminedMetadata, std::to_string(total_examined));
      return grpc::Status::OK;
    }
    token.clear();
    p = run.back() + 1;
  }
  if (p < partitions) response->set_next_page_token(ListPatientsTokenAt(request, p));
  GatheredTrailers(context, answered, offsets);
  context->AddTrailingMetadata(kCandidatesExaminedMetadata, std::to_string(total_examined));
  return grpc::Status::OK;
}

template <typename Forward>
std::optional<grpc::Status> QueryService::Route(grpc::ServerContext* context,
                                                absl::string_view patient_id,
                                                QueryRouter::Route* route, Forward forward) {
  *route = router_->RouteOf(patient_id);
  auto unavailable = [&](const std::string& why) { return RetryLater(context, why); };
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
  auto stubs = router_->Peer(route->peer);
  if (!stubs.ok()) return unavailable(std::string(stubs.status().message()));
  grpc::ClientContext client;
  ForwardFrom(*context, absl::Now() + absl::Seconds(10), &client);
  grpc::Status s = forward(stubs->query, &client);
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
    // Found in a refused partition's copy, or not found while one may hold the patient.
    if (state.ok()) {
      if (auto refused = RefusedFor(*state); refused.has_value()) return *refused;
    }
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
  } else if (Refused(std::nullopt).has_value()) {  // else nothing to look up first
    auto found = storage_->FindPatient(request->patient_id());
    if (!found.ok()) return ToGrpc(found.status());
    if (auto refused = RefusedFor(*found); refused.has_value()) return *refused;
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
  if (router_ != nullptr) return GatherListPatients(context, *request, response);
  if (auto refused = Refused(std::nullopt); refused.has_value()) return *refused;
  ListPatientsCost cost;
  if (absl::Status s = ListPatientsPage(*storage_, config_, *request, response, &cost); !s.ok()) {
    return ToGrpc(s);
  }
  // What the page cost, for operators and tests: the index entries examined to fill it, and the
  // index kind walked.
  context->AddTrailingMetadata(kCandidatesExaminedMetadata, std::to_string(cost.examined));
  context->AddTrailingMetadata("tend-index", std::string(1, cost.index_kind));
  return grpc::Status::OK;
}

}  // namespace tend
