// RocksDB's CRC-32C, computed by tend's (base/crc32c.h). Built on x86-64 only
// (storage/CMakeLists.txt).
//
// Why: Debian's librocksdb is built portable (no SSE4.2 at compile time), so its CRC-32C, which
// checksums every byte written to the write-ahead log, runs the table-driven path
// (`Slow_CRC32`) whatever the CPU. Every commit puts each dirty patient's whole state in the WAL:
// with 1,095-day histories at a live engine's cadence that checksum was 23% of all CPU
// (docs/benchmarks.md, "Hardware CRC-32C").
//
// How: RocksDB's util/crc32c.cc defines exactly the three functions below (and uses them through
// no other name). tend links RocksDB statically, and this object comes first on the link line
// (storage/CMakeLists.txt forces it in with --undefined), so the linker finds these definitions
// and never pulls RocksDB's crc32c object out of librocksdb.a. Should a later RocksDB define
// anything else in that object and use it, its object would be pulled too and the link would fail
// on the duplicate definitions: loud, never a silent mix. The values are the same CRC-32C, so
// files written either way read either way (tests/storage/rocksdb_crc32c_test.cc reads a WAL
// written here with Debian's own `ldb`).
//
// The declarations are RocksDB 7.8's (util/crc32c.h, not installed with the library).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "base/crc32c.h"

namespace rocksdb::crc32c {

std::string IsFastCrc32Supported();
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);
uint32_t Crc32cCombine(uint32_t crc1, uint32_t crc2, size_t crc2len);

// RocksDB logs this at open.
std::string IsFastCrc32Supported() {
  return tend::Crc32cInHardware() ? "Supported on x86 (tend: SSE4.2 CRC32)"
                                  : "Not supported (tend: slicing-by-8 table)";
}

// The CRC-32C of A + data[0, n) from init_crc, the CRC-32C of A.
uint32_t Extend(uint32_t init_crc, const char* data, size_t n) {
  return tend::Crc32c(absl::string_view(data, n), init_crc);
}

// The CRC-32C of A + B from those of A (crc1) and B (crc2, of crc2len bytes).
uint32_t Crc32cCombine(uint32_t crc1, uint32_t crc2, size_t crc2len) {
  return tend::Crc32cCombine(crc1, crc2, crc2len);
}

}  // namespace rocksdb::crc32c
