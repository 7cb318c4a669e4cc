// The ListPatients planner: answers a tend.v1.ListPatientsRequest a page at a time from the
// patient index (index/patient_index.h) instead of walking every patient. For each filter an
// index can serve (programme, staff, hard churn, churn-risk band, activated, stage as a range of
// the last activity) it estimates the index entries to walk from RocksDB's size estimates and
// takes the smallest; every candidate is then read and checked exactly (MatchesListFilters), so
// the index narrows, it never decides. Page tokens name the query (a fingerprint of its filters
// and as_of) and the index walked, so a query keeps its plan across pages.
//
// Page token, version "L3" (opaque to clients; web-safe base64 of): "L3", the query's
// fingerprint (8 bytes, big-endian), the index kind walked ('*': none chosen yet), the cursor
// (the last index key examined, or '*''s bare 4-byte partition prefix), and the CRC-32C of all
// the bytes before it (4 bytes, big-endian). The CRC refuses a token cut short or altered, which
// would otherwise often be a valid shorter cursor and repeat patients. Tokens of version "L2"
// (before the CRC) are refused: a listing under way when an engine is upgraded starts again.
//
// Thread safety: the functions are pure apart from reading `storage`, which may be shared.
#ifndef TEND_INDEX_PLANNER_H_
#define TEND_INDEX_PLANNER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "projections/config.h"
#include "storage/storage.h"
#include "tend/v1/services.pb.h"
#include "tend/v1/state.pb.h"

namespace tend {

// Whether `view` passes the filters of a ListPatients request (stage, min_churn_risk, program,
// staff, activated); paging and as_of aside.
bool MatchesListFilters(const v1::ListPatientsRequest& request, const v1::PatientView& view);

// What a page cost: the index entries examined to fill it, and the index kind walked (a
// storage/format.h IndexKind letter).
struct ListPatientsCost {
  int64_t examined = 0;
  char index_kind = 0;
};

// One page of the patients matching `request`, viewed at its as_of (unset: each partition's
// clock), from one snapshot of `storage` folded with `config`, into `response` (patients and
// next_page_token; empty token: the last page). A page holds at most page_size patients
// (0: 50, at most 1000) and examines at most 20,000 + 20 x page_size index entries, so a sparse
// filter comes back with a short page and a token to go on. kInvalidArgument naming the field
// (page_size, stage, min_churn_risk, program_id, staff_id, as_of, page_token); kUnavailable
// while the index is being rebuilt. `cost` may be null.
// `partitions` (ascending), when given, limits the walk to those partitions: an engine among
// several answers from the partitions it owns (services/query_service.h). `max_examined`, when
// positive and below the page's own bound, bounds the entries examined instead: what is left of
// the bound of a page gathered from several walks.
absl::Status ListPatientsPage(const Storage& storage, const projections::ProjectionConfig& config,
                              const v1::ListPatientsRequest& request,
                              v1::ListPatientsResponse* response, ListPatientsCost* cost,
                              const std::vector<int32_t>* partitions = nullptr,
                              int64_t max_examined = 0);

// The index entries a page of `page_size` patients (0: the default, 50) may examine:
// 20,000 + 20 x page_size.
int64_t ListPatientsMaxExamined(int32_t page_size);

// Page tokens for a walk gathered from several instances, each walking its own partitions: the
// partition a token's cursor is in (kInvalidArgument as ListPatientsPage for a token that is not
// one, or belongs to another query), and a token that starts the walk of `request` at the
// beginning of `partition` (its plan chosen there as on a first page).
absl::StatusOr<int32_t> ListPatientsTokenPartition(const v1::ListPatientsRequest& request);
std::string ListPatientsTokenAt(const v1::ListPatientsRequest& request, int32_t partition);

}  // namespace tend

#endif  // TEND_INDEX_PLANNER_H_
