// Where a query about one patient is answered when several engine instances share the events
// topic (docs/design.md, "State that follows its partition"): here, by the owner of the
// patient's partition (the call is forwarded), or nowhere right now (UNAVAILABLE with a retry
// hint: a rebalance is moving the partition, or its owner stopped). cluster/router.h implements
// it from the engine's partitions and the membership topic.
#ifndef TEND_SERVICES_QUERY_ROUTER_H_
#define TEND_SERVICES_QUERY_ROUTER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

// Trailing metadata of a routed answer, and the mark of a forwarded call.
inline constexpr char kAnsweredByMetadata[] = "tend-answered-by";      // host:port of the owner
inline constexpr char kPartitionMetadata[] = "tend-partition";          // the patient's partition
inline constexpr char kPartitionOffsetMetadata[] = "tend-partition-offset";  // folded up to
// A gathered answer (CohortStats, ListPatients): "partition:offset,..." of the partitions read.
inline constexpr char kPartitionOffsetsMetadata[] = "tend-partition-offsets";
// A ListPatients page: the index entries examined for it (gathered: by every run, in all).
inline constexpr char kCandidatesExaminedMetadata[] = "tend-candidates-examined";
inline constexpr char kForwardedMetadata[] = "tend-forwarded";          // "1": do not forward
// gRPC's retry pushback (milliseconds), on UNAVAILABLE answers of a routing instance.
inline constexpr char kRetryPushbackMetadata[] = "grpc-retry-pushback-ms";

class QueryRouter {
 public:
  struct Route {
    enum class Kind { kHere, kPeer, kUnavailable };
    Kind kind = Kind::kUnavailable;
    int32_t partition = 0;
    int64_t offset = 0;  // kHere: the partition's next offset to fold (committed up to it)
    std::string peer;    // kPeer: the owner's address
    std::string why;     // kUnavailable
  };
  // Clients of another instance (kept per address, one channel for both).
  struct PeerStubs {
    v1::Query::StubInterface* query = nullptr;
    v1::Peer::StubInterface* parts = nullptr;
  };
  virtual ~QueryRouter() = default;
  // The route of the patient's partition.
  virtual Route RouteOf(absl::string_view patient_id) const = 0;
  // The route of `partition` (0 <= partition < partitions()).
  virtual Route RouteOfPartition(int32_t partition) const = 0;
  // The partitions of the events topic.
  virtual int32_t partitions() const = 0;
  // This instance's advertised address.
  virtual const std::string& self() const = 0;
  // Clients of the instance at `address`; an error when they cannot be made.
  virtual absl::StatusOr<PeerStubs> Peer(const std::string& address) = 0;
};

}  // namespace tend

#endif  // TEND_SERVICES_QUERY_ROUTER_H_
