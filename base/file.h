// Reading a small file that may be hostile: only a regular file, only up to a bound, and never
// blocking on a FIFO or device put where the file was expected.
#ifndef TEND_BASE_FILE_H_
#define TEND_BASE_FILE_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tend {

// The content of `path`. Opened without blocking and checked with fstat on that same descriptor
// (no window between the check and the read): kNotFound "cannot read PATH" when it cannot be
// opened, kInvalidArgument "PATH: not a regular file" or "PATH: N bytes; at most MAX are read".
// `mode`, when given, receives the file's permission bits.
absl::StatusOr<std::string> ReadBoundedFile(const std::string& path, int64_t max_bytes,
                                            mode_t* mode = nullptr);

}  // namespace tend

#endif  // TEND_BASE_FILE_H_
