// The one adapter from absl::Status to grpc::Status (grpc::Status lives only in services/,
// and in the ReminderSink client of dispatch/).
#ifndef TEND_SERVICES_GRPC_STATUS_H_
#define TEND_SERVICES_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/printable.h"

namespace tend {

// `field_prefix` is put before the message of kInvalidArgument errors, whose messages start with
// the field name ("patient_id: ..."), so the client sees the field's path in its request.
inline grpc::Status ToGrpc(const absl::Status& s, absl::string_view field_prefix = "") {
  if (s.ok()) return grpc::Status::OK;
  // A message may quote the request (a field's path): bounded, as gRPC sends it in a header.
  std::string msg = Bounded(s.message(), 1024);
  if (s.code() == absl::StatusCode::kInvalidArgument) msg = absl::StrCat(field_prefix, msg);
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), msg);
}

}  // namespace tend

#endif  // TEND_SERVICES_GRPC_STATUS_H_
