// CRC-32C: the Castagnoli polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final
// XOR 0xFFFFFFFF, as in iSCSI (RFC 3720, appendix B.4) and SSE4.2's CRC32 instruction. The one
// CRC-32C of tend: archive frames (kafka/archive.h) and, on x86-64, through
// storage/rocksdb_crc32c.cc, every checksum RocksDB computes (its write-ahead log above all).
//
// On x86-64 with SSE4.2 (Intel since Nehalem, 2008; AMD since Bulldozer, 2011; checked once at
// run time) the CRC32 instruction computes it, eight bytes at a time; elsewhere a slicing-by-8
// table does. Both give
// the same values (tests/base/crc32c_test.cc).
#ifndef TEND_BASE_CRC32C_H_
#define TEND_BASE_CRC32C_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace tend {

// The CRC-32C of `data` continuing from `crc`, the CRC-32C of what came before it (0 to start):
// Crc32c(b, Crc32c(a)) == Crc32c(a + b).
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

// The CRC-32C of a + b from crc_a = Crc32c(a), crc_b = Crc32c(b) and b's length, without b:
// crc_a times x^(8 * b_length) modulo the polynomial, plus crc_b (GF(2) arithmetic; the initial
// value and final XOR cancel out). O(log b_length).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, size_t b_length);

// Whether Crc32c runs on the CPU's CRC32 instruction.
bool Crc32cInHardware();

// The table-driven computation whatever the CPU (for tests: both paths must agree).
uint32_t Crc32cSoftware(absl::string_view data, uint32_t crc = 0);

}  // namespace tend

#endif  // TEND_BASE_CRC32C_H_
