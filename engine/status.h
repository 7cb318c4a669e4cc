// One error type inside tend: absl::Status. The adapters below turn RocksDB and librdkafka
// errors into it, choosing the code by what the caller should do next (CONVENTIONS.md point 2):
// kUnavailable = retry, kInvalidArgument = fix the input, kFailedPrecondition = fix state first.
#ifndef TEND_ENGINE_STATUS_H_
#define TEND_ENGINE_STATUS_H_

#include <librdkafka/rdkafka.h>
#include <rocksdb/status.h>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Abseil 20220623 has no RETURN_IF_ERROR; this is the one local macro.
#define TEND_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status tend_status_ = (expr);        \
    if (!tend_status_.ok()) return tend_status_; \
  } while (0)

#define TEND_CONCAT_INNER_(a, b) a##b
#define TEND_CONCAT_(a, b) TEND_CONCAT_INNER_(a, b)
// TEND_ASSIGN_OR_RETURN(auto x, MaybeX()); returns the error status when MaybeX() failed.
#define TEND_ASSIGN_OR_RETURN(lhs, expr) \
  TEND_ASSIGN_OR_RETURN_IMPL_(TEND_CONCAT_(tend_statusor_, __LINE__), lhs, expr)
#define TEND_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

namespace tend {

// `what` says which operation failed, e.g. "opening /var/lib/tend".
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);
absl::Status FromKafka(rd_kafka_resp_err_t err, absl::string_view what);

}  // namespace tend

#endif  // TEND_ENGINE_STATUS_H_
