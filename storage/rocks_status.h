// The adapter from rocksdb::Status to tend's one error type (base/status.h).
#ifndef TEND_STORAGE_ROCKS_STATUS_H_
#define TEND_STORAGE_ROCKS_STATUS_H_

#include <rocksdb/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tend {

// `what` says which operation failed, e.g. "opening /var/lib/tend". kNotFound, kDataLoss
// (corruption), kInvalidArgument, kUnavailable (busy, I/O), kFailedPrecondition (the directory's
// LOCK is held by another process), else kInternal.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

}  // namespace tend

#endif  // TEND_STORAGE_ROCKS_STATUS_H_
