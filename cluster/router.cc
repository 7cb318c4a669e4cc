#include "cluster/router.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "kafka/partitioner.h"

namespace tend {
namespace {

constexpr int kMaxPeerMessageBytes = 256 << 20;

}  // namespace

QueryRouter::Route ClusterRouter::RouteOf(absl::string_view patient_id) const {
  return RouteOfPartition(KafkaPartition(patient_id, partitions_));
}

QueryRouter::Route ClusterRouter::RouteOfPartition(int32_t partition) const {
  Route route;
  route.partition = partition;
  absl::MutexLock lock(&mu_);
  if (engine_ == nullptr || membership_ == nullptr) {
    route.why = "this instance is starting";
    return route;
  }
  if (auto offset = engine_->OwnedOffset(route.partition); offset.has_value()) {
    route.kind = Route::Kind::kHere;
    route.offset = *offset;
    return route;
  }
  if (auto why = engine_->RefusedWhy(route.partition); why.has_value()) {
    route.why = absl::StrCat("partition ", route.partition, " is refused by this instance (",
                             *why, "); it answers for it again once an assignment restores it");
    return route;
  }
  auto owner = membership_->OwnerOf(route.partition);
  if (owner.has_value() && *owner != self()) {
    route.kind = Route::Kind::kPeer;
    route.peer = *std::move(owner);
    return route;
  }
  route.kind = Route::Kind::kUnavailable;
  if (!owner.has_value()) {
    if (auto refuser = membership_->RefuserOf(route.partition); refuser.has_value()) {
      // A record carries at most 16 KiB of reasons: the others say only which partitions.
      route.why =
          absl::StrCat("partition ", route.partition, " is refused by ", refuser->address, " (",
                       refuser->why.empty() ? "its health and log say why" : refuser->why,
                       "); it is answered again once an assignment restores it");
      return route;
    }
  }
  route.why = owner.has_value()
                  ? absl::StrCat("partition ", route.partition, " is being restored or moved here")
                  : absl::StrCat("no instance owns partition ", route.partition,
                                 " now (a rebalance is moving it, or its owner stopped)");
  return route;
}

absl::StatusOr<QueryRouter::PeerStubs> ClusterRouter::Peer(const std::string& address) {
  absl::MutexLock lock(&mu_);
  // The address comes from the membership topic: a caller's token goes in plaintext to
  // nothing but loopback, whoever wrote it there.
  if (peer_security_.tls_ca.empty() && !allow_plaintext_ && !IsLoopbackAddress(address)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the owner ", address, " is not on loopback and this instance has no --peer-tls-ca: a "
        "caller's token is never forwarded in plaintext"));
  }
  // Member records of instances advertised on loopback need no cluster key (tools/commands.cc):
  // such an instance forwards only to loopback peers, whatever address a record names (an
  // off-loopback instance could not reach it anyway).
  if (IsLoopbackAddress(address_) && !IsLoopbackAddress(address)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the owner ", address, " is not on loopback, and this instance advertises ", address_,
        ", on loopback: it forwards nothing off this host (advertise an address the other "
        "instances reach, with --cluster-key-file)"));
  }
  PeerClients& clients = peers_[address];
  if (clients.query == nullptr) {
    auto auth = MakeClientAuth(peer_security_, address);
    if (!auth.ok()) {
      peers_.erase(address);
      return auth.status();
    }
    // A cohort partial carries every converted patient's purchase time (a few bytes each): more
    // than gRPC's default 4 MiB for a few million patients.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxPeerMessageBytes);
    auto channel = grpc::CreateCustomChannel(address, auth->credentials, args);
    clients.query = v1::Query::NewStub(channel);
    clients.parts = v1::Peer::NewStub(channel);
  }
  return PeerStubs{clients.query.get(), clients.parts.get()};
}

}  // namespace tend
