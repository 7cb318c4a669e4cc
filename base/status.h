// One error type inside tend: absl::Status, its code chosen by what the caller should do next:
// kUnavailable = retry, kInvalidArgument = fix the input, kFailedPrecondition = fix state first.
// The adapters from the libraries' own errors live beside their wrappers: FromRocks in
// storage/rocks_status.h, FromKafka in kafka/kafka.h.
#ifndef TEND_BASE_STATUS_H_
#define TEND_BASE_STATUS_H_

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tend {

// `status` with `context` before its message ("context: message"), its code and payloads kept
// (a payload is a mark a caller further up may test for, e.g. changelog::IsDamage).
inline absl::Status WithContext(absl::string_view context, const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace tend

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

#endif  // TEND_BASE_STATUS_H_
