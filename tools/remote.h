// Reading a running deployment through any one of its engine instances over gRPC, for
// `tend dump --grpc` and `tend report --grpc`: the instance gathers the answer from the owner of
// every partition (services/query_service.h). What a state directory read gives in one snapshot
// comes here a page at a time: each page is read when it is asked for, and the offsets each
// partition was read at are reported.
//
// A partition without an owner (a rebalance, an instance that stopped) makes the instance answer
// UNAVAILABLE, and one at its bound on cohort reads RESOURCE_EXHAUSTED with a retry hint; these
// functions wait and ask again (gRPC's retry pushback, or a second) for up to
// `retry_for` of no progress, saying so on `progress`, then fail naming the last answer.
//
// Thread safety: functions without shared state.
#ifndef TEND_TOOLS_REMOTE_H_
#define TEND_TOOLS_REMOTE_H_

#include <atomic>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "auth/auth.h"
#include "tend/v1/cohort.pb.h"
#include "tend/v1/services.pb.h"

namespace tend {

struct RemoteOptions {
  std::string target;        // host:port of any instance's gRPC
  ClientSecurity security;   // TLS and the query-role token
  absl::Duration retry_for = absl::Minutes(2);
  // Set (SIGINT, SIGTERM): stop waiting and between pages, kCancelled. May be null.
  const std::atomic<bool>* stop = nullptr;
};

// Query/CohortStats, viewed at `as_of` (unset: each partition's clock).
absl::StatusOr<v1::CohortStats> FetchCohortStats(const RemoteOptions& remote,
                                                 std::optional<absl::Time> as_of,
                                                 std::ostream& progress);

// Every patient through Query/ListPatients (no filter, `as_of` as above), a page of 1,000 at a
// time, each given to `fn` once: a patient whose activity moved it further along the walk
// between two pages is not given again. `offsets` (may be null) gets, per partition, the offset
// it was last read at.
absl::Status ForEachRemotePatient(const RemoteOptions& remote, std::optional<absl::Time> as_of,
                                  const std::function<absl::Status(const v1::PatientView&)>& fn,
                                  std::map<int32_t, int64_t>* offsets, std::ostream& progress);

}  // namespace tend

#endif  // TEND_TOOLS_REMOTE_H_
