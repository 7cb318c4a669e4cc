// Reading files and streams that may be hostile: a small file only if it is a regular file, only
// up to a bound, never blocking on a FIFO or device put where the file was expected; lines only
// up to a bound. And making a file or a directory's entries durable (SyncPath).
#ifndef TEND_BASE_FILE_H_
#define TEND_BASE_FILE_H_

#include <sys/types.h>

#include <cstdint>
#include <istream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tend {

// The content of `path`. Opened without blocking and checked with fstat on that same descriptor
// (no window between the check and the read): kNotFound "cannot read PATH" when it cannot be
// opened, kInvalidArgument "PATH: not a regular file" or "PATH: N bytes; at most MAX are read".
// `mode`, when given, receives the file's permission bits.
absl::StatusOr<std::string> ReadBoundedFile(const std::string& path, int64_t max_bytes,
                                            mode_t* mode = nullptr);

// OK when `path` is a regular file, checked on a descriptor opened without blocking (a FIFO
// opened for reading waits for a writer): kNotFound "cannot read PATH" when it cannot be opened,
// kInvalidArgument "PATH: not a regular file". For readers that then open the file themselves.
absl::Status CheckRegularFile(const std::string& path);

// Reads the next line of `in` (without its '\n') into `*line`: false at the end of the input.
// A line longer than `max_bytes` is read to its end but not kept: `*line` holds its first
// `max_bytes` bytes and `*too_long` is set, so a hostile stream cannot make one line take
// unbounded memory.
bool ReadBoundedLine(std::istream& in, size_t max_bytes, std::string* line, bool* too_long);

// fsync(2) of `path`, a file (its content) or a directory (its entries: a file created, renamed
// or removed in it), opened read-only. kInternal "opening PATH: why" or "syncing PATH: why".
absl::Status SyncPath(const std::string& path);

}  // namespace tend

#endif  // TEND_BASE_FILE_H_
