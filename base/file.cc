#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace tend {

namespace {

// `path` opened without blocking into `*fd` and checked on that descriptor (no window between the
// check and the reads): a regular file, its fstat in `*st`. On an error nothing is left open.
absl::Status OpenRegularFile(const std::string& path, int* fd, struct stat* st) {
  *fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (*fd < 0) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  absl::Status problem;
  if (::fstat(*fd, st) != 0) {
    problem = absl::NotFoundError(absl::StrCat("cannot read ", path));
  } else if (!S_ISREG(st->st_mode)) {
    problem = absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  if (!problem.ok()) ::close(*fd);
  return problem;
}

}  // namespace

absl::Status CheckRegularFile(const std::string& path) {
  int fd = -1;
  struct stat st;
  TEND_RETURN_IF_ERROR(OpenRegularFile(path, &fd, &st));
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadBoundedFile(const std::string& path, int64_t max_bytes,
                                            mode_t* mode) {
  int fd = -1;
  struct stat st;
  TEND_RETURN_IF_ERROR(OpenRegularFile(path, &fd, &st));
  absl::Status problem;
  if (st.st_size > max_bytes) {
    problem = absl::InvalidArgumentError(
        absl::StrCat(path, ": ", st.st_size, " bytes; at most ", max_bytes, " are read"));
  }
  std::string text;
  if (problem.ok()) {
    // One byte more than allowed: a file that grew since fstat is caught.
    text.resize(static_cast<size_t>(st.st_size) + 1);
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        problem = absl::DataLossError(absl::StrCat("error reading ", path));
        break;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    text.resize(got);
    if (problem.ok() && static_cast<int64_t>(got) > max_bytes) {
      problem = absl::InvalidArgumentError(
          absl::StrCat(path, ": more than ", max_bytes, " bytes; at most ", max_bytes,
                       " are read"));
    }
  }
  ::close(fd);
  if (!problem.ok()) return problem;
  if (mode != nullptr) *mode = st.st_mode;
  return text;
}

bool ReadBoundedLine(std::istream& in, size_t max_bytes, std::string* line, bool* too_long) {
  line->clear();
  *too_long = false;
  std::streambuf* buf = in.rdbuf();
  if (buf == nullptr || !in.good()) return false;
  bool any = false;
  for (;;) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    any = true;
    if (c == '\n') return true;
    if (line->size() < max_bytes) {
      line->push_back(static_cast<char>(c));
    } else {
      *too_long = true;
    }
  }
}

absl::Status SyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("opening ", path, ": ", std::strerror(errno)));
  const bool ok = ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("syncing ", path, ": ", std::strerror(saved)));
  return absl::OkStatus();
}

}  // namespace tend
