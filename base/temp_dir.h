// A directory under $TMPDIR (or /tmp), created with mkdtemp and removed with everything in it
// when the object goes away. For scratch state of demo, bench, dump and the tests.
// Not thread-safe; movable, not copyable.
#ifndef TEND_BASE_TEMP_DIR_H_
#define TEND_BASE_TEMP_DIR_H_

#include <functional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tend {

class ScopedTempDir {
 public:
  // `prefix` starts the directory's name, e.g. "tend-demo-".
  static absl::StatusOr<ScopedTempDir> Create(const std::string& prefix);
  ScopedTempDir(ScopedTempDir&& other) noexcept : path_(std::move(other.path_)) {
    other.path_.clear();
  }
  ScopedTempDir& operator=(ScopedTempDir&&) = delete;
  ~ScopedTempDir();

  const std::string& path() const { return path_; }

 private:
  explicit ScopedTempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Writes the file at `path` through PATH.partial: `write` fills the stream, and the file takes
// its final name only when `write` succeeded and every byte reached the disk; otherwise the
// partial file is removed and the error returned (kUnavailable naming the file for I/O). So a
// half-written file never carries the final name.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::function<absl::Status(std::ostream&)>& write);

}  // namespace tend

#endif  // TEND_BASE_TEMP_DIR_H_
