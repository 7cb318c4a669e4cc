// Fuzz target: an archive file (tend archive; kafka/archive.h), read as tend replay --archive
// reads it: the header, then every record until the end frame or an error. No input may crash
// the reader, and a reader that reports the end has checked the record count.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <cstdlib>
#include <memory>
#include <string>

#include "kafka/archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tend;
  // The input as a file (in memory): the reader opens archives by path.
  const int fd = memfd_create("archive", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  auto reader = ArchiveReader::Open("/proc/self/fd/" + std::to_string(fd));
  if (reader.ok()) {
    v1::ArchiveRecord record;
    for (;;) {
      auto more = (*reader)->Next(&record);
      if (!more.ok() || !*more) break;
    }
  }
  close(fd);
  return 0;
}
