#include "base/crc32c.h"

#include <array>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace tend {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // 0x1EDC6F41 bit-reversed: the register shifts right

// Slicing-by-8 (Kounavis & Berry, "A Systematic Approach to Building High Performance
// Software-based CRC Generators", 2005): table[0] advances the register over one byte; table[k]
// over one byte followed by k zero bytes, so eight table lookups advance it over eight bytes.
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
      t[0][i] = c;
    }
    for (size_t k = 1; k < 8; ++k) {
      for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
  }
};

const Tables& SoftwareTables() {
  static const Tables tables;
  return tables;
}

uint32_t LoadLittle32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// The register (already inverted) advanced over p[0, n).
uint32_t SoftwareRegister(uint32_t reg, const unsigned char* p, size_t n) {
  const auto& t = SoftwareTables().t;
  for (; n >= 8; p += 8, n -= 8) {
    const uint32_t lo = LoadLittle32(p) ^ reg;
    const uint32_t hi = LoadLittle32(p + 4);
    reg = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) reg = t[0][(reg ^ *p) & 0xff] ^ (reg >> 8);
  return reg;
}

#if defined(__x86_64__)
// SSE4.2's CRC32 instruction uses this very polynomial and bit order (Intel SDM, "CRC32").
__attribute__((target("sse4.2"))) uint32_t HardwareRegister(uint32_t reg, const unsigned char* p,
                                                            size_t n) {
  uint64_t r = reg;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word = 0;
    __builtin_memcpy(&word, p, 8);  // x86 is little-endian, as the instruction expects
    r = _mm_crc32_u64(r, word);
  }
  reg = static_cast<uint32_t>(r);
  for (; n > 0; ++p, --n) reg = _mm_crc32_u8(reg, *p);
  return reg;
}

bool CpuHasCrc32() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

// a(x) * b(x) modulo the polynomial, bit-reversed like the register (bit 31 is x^0).
uint32_t MultiplyModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
    if (a & bit) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPolynomial : b >> 1;  // b *= x
  }
  return product;
}

// x^(2^k) modulo the polynomial for k = 0..66: enough for x^(8n), any 64-bit n.
struct PowersOfX {
  std::array<uint32_t, 67> x2k{};
  PowersOfX() {
    x2k[0] = 1u << 30;  // x^1
    for (size_t k = 1; k < x2k.size(); ++k) x2k[k] = MultiplyModP(x2k[k - 1], x2k[k - 1]);
  }
};

}  // namespace

bool Crc32cInHardware() {
#if defined(__x86_64__)
  static const bool hardware = CpuHasCrc32();
  return hardware;
#else
  return false;
#endif
}

uint32_t Crc32cSoftware(absl::string_view data, uint32_t crc) {
  return ~SoftwareRegister(~crc, reinterpret_cast<const unsigned char*>(data.data()), data.size());
}

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
#if defined(__x86_64__)
  if (Crc32cInHardware()) return ~HardwareRegister(~crc, p, data.size());
#endif
  return ~SoftwareRegister(~crc, p, data.size());
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, size_t b_length) {
  static const PowersOfX powers;
  // x^(8 * b_length) = the product of x^(2^k) over the set bits k of 8 * b_length.
  uint32_t shift = 1u << 31;  // x^0
  uint64_t n = b_length;
  for (size_t k = 3; n != 0; ++k, n >>= 1) {
    if (n & 1) shift = MultiplyModP(powers.x2k[k], shift);
  }
  return MultiplyModP(shift, crc_a) ^ crc_b;
}

}  // namespace tend
