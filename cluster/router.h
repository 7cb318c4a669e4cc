// services/query_router.h for an engine instance among several: the patient's partition by
// Kafka's own partitioner (kafka/partitioner.h), answered here when this engine owns it,
// forwarded to the owner the membership topic names (cluster/membership.h), and UNAVAILABLE
// when none does (naming the instance that holds the partition and refuses it, if one does).
//
// Thread safety: thread-safe.
#ifndef TEND_CLUSTER_ROUTER_H_
#define TEND_CLUSTER_ROUTER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "auth/auth.h"
#include "cluster/membership.h"
#include "engine/engine.h"
#include "services/query_router.h"

namespace tend {

class ClusterRouter final : public QueryRouter {
 public:
  // `address`: this instance's advertised address. `partitions`: of the events topic.
  // `peer_security`: how to reach the other instances (TLS; no token of its own: a forwarded
  // call carries its caller's). Every query is UNAVAILABLE until Attach.
  // `allow_plaintext`: calls (with their callers' tokens) may go to peers off loopback without
  // TLS (TLS ends at a mesh: the server's --plaintext).
  ClusterRouter(std::string address, int32_t partitions, ClientSecurity peer_security,
                bool allow_plaintext = false)
      : address_(std::move(address)),
        partitions_(partitions),
        peer_security_(std::move(peer_security)),
        allow_plaintext_(allow_plaintext) {}
  // The engine and membership to route by (borrowed: they must outlive the router, or be
  // detached with Attach(nullptr, nullptr) first).
  void Attach(const Engine* engine, const Membership* membership) {
    absl::MutexLock lock(&mu_);
    engine_ = engine;
    membership_ = membership;
  }

  Route RouteOf(absl::string_view patient_id) const override;
  Route RouteOfPartition(int32_t partition) const override;
  int32_t partitions() const override { return partitions_; }
  const std::string& self() const override { return address_; }
  absl::StatusOr<PeerStubs> Peer(const std::string& address) override;

 private:
  const std::string address_;
  const int32_t partitions_;
  const ClientSecurity peer_security_;
  const bool allow_plaintext_;
  mutable absl::Mutex mu_;
  const Engine* engine_ ABSL_GUARDED_BY(mu_) = nullptr;
  const Membership* membership_ ABSL_GUARDED_BY(mu_) = nullptr;
  struct PeerClients {
    std::unique_ptr<v1::Query::Stub> query;
    std::unique_ptr<v1::Peer::Stub> parts;
  };
  std::map<std::string, PeerClients> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tend

#endif  // TEND_CLUSTER_ROUTER_H_
