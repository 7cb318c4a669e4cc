#include "storage/rocks_status.h"

#include "absl/strings/str_cat.h"

namespace tend {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(msg);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kNotSupported:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(msg);
    case rocksdb::Status::kIOError:
      if (s.IsNoSpace()) {
        return absl::ResourceExhaustedError(absl::StrCat(
            what, ": no space left on device (", s.ToString(),
            "). Free space on the state directory's disk: nothing past the last commit was "
            "written, so the state is consistent as of that commit"));
      }
      // Before the lock's: a read-only filesystem or a directory not ours fails at the LOCK file
      // too, and another engine is not the cause.
      if (s.ToString().find("Read-only file system") != std::string::npos) {
        return absl::FailedPreconditionError(absl::StrCat(
            msg, " (the --db directory is on a read-only filesystem, and this command writes "
                 "there)"));
      }
      if (s.ToString().find("Permission denied") != std::string::npos) {
        return absl::FailedPreconditionError(absl::StrCat(
            msg, " (this user may not write there: run as the directory's owner)"));
      }
      // A held LOCK file means another process owns the directory: fix state, don't retry blindly.
      if (s.ToString().find("lock") != std::string::npos) {
        return absl::FailedPreconditionError(
            absl::StrCat(msg, " (is another tend engine using this --db directory?)"));
      }
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace tend
