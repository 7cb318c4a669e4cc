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
  virtual ~QueryRouter() = default;
  virtual Route RouteOf(absl::string_view patient_id) const = 0;
  // This instance's advertised address.
  virtual const std::string& self() const = 0;
  // A client of the peer's tend.v1.Query (kept per address); an error when it cannot be made.
  virtual absl::StatusOr<v1::Query::StubInterface*> Peer(const std::string& address) = 0;
};

}  // namespace tend

#endif  // TEND_SERVICES_QUERY_ROUTER_H_
