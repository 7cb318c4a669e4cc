// base/crc32c.h: the published check values, both computations against a bit-at-a-time
// reference over every length and alignment that matters, pieces and Combine.
#include "base/crc32c.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>

namespace tend {
namespace {

// CRC-32C straight from its definition, one bit at a time: nothing shared with base/crc32c.cc.
uint32_t BitwiseCrc32c(absl::string_view data, uint32_t crc = 0) {
  uint32_t reg = ~crc;
  for (unsigned char byte : data) {
    reg ^= byte;
    for (int bit = 0; bit < 8; ++bit) reg = (reg >> 1) ^ (0x82F63B78u & (0u - (reg & 1)));
  }
  return ~reg;
}

std::string RandomBytes(std::mt19937_64* rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>((*rng)() & 0xff);
  return s;
}

TEST_CASE("CRC-32C gives the published check values", "[base]") {
  // RFC 3720 (iSCSI), appendix B.4, and the Castagnoli check value of "123456789".
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  for (auto crc : {Crc32c, Crc32cSoftware}) {
    CHECK(crc("123456789", 0) == 0xE3069283u);
    CHECK(crc("", 0) == 0u);
    CHECK(crc(zeros, 0) == 0x8A9136AAu);
    CHECK(crc(ones, 0) == 0x62A8AB43u);
    CHECK(crc(up, 0) == 0x46DD794Eu);
    CHECK(crc(down, 0) == 0x113FDB5Cu);
    CHECK(crc("6789", crc("12345", 0)) == 0xE3069283u);  // continues across pieces
  }
  CHECK(BitwiseCrc32c("123456789") == 0xE3069283u);
}

TEST_CASE("the hardware and table computations equal the bitwise one everywhere", "[base]") {
  INFO("in hardware: " << Crc32cInHardware());
  std::mt19937_64 rng(17);
  const std::string buffer = RandomBytes(&rng, 4096);
  // Every length up to a few words past the 8-byte steps, at every alignment, then long ones.
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 70; ++n) {
      const absl::string_view piece(buffer.data() + offset, n);
      const uint32_t want = BitwiseCrc32c(piece);
      INFO("offset " << offset << ", length " << n);
      REQUIRE(Crc32c(piece) == want);
      REQUIRE(Crc32cSoftware(piece) == want);
    }
  }
  for (size_t n : {1000, 1023, 4089, 4096 - 3}) {
    const absl::string_view piece(buffer.data() + 3, n);
    CHECK(Crc32c(piece, 0x12345678u) == BitwiseCrc32c(piece, 0x12345678u));
    CHECK(Crc32cSoftware(piece, 0x12345678u) == BitwiseCrc32c(piece, 0x12345678u));
  }
}

TEST_CASE("a CRC-32C split anywhere continues and combines to the whole's", "[base]") {
  std::mt19937_64 rng(29);
  const std::string whole = RandomBytes(&rng, 3000);
  const uint32_t want = BitwiseCrc32c(whole);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{1500},
                     size_t{2999}, size_t{3000}}) {
    INFO("cut at " << cut);
    const absl::string_view a = absl::string_view(whole).substr(0, cut);
    const absl::string_view b = absl::string_view(whole).substr(cut);
    CHECK(Crc32c(b, Crc32c(a)) == want);
    CHECK(Crc32cCombine(Crc32c(a), Crc32c(b), b.size()) == want);
  }
  // A long second part: x^(8n) from many powers.
  const std::string a = RandomBytes(&rng, 100), b = RandomBytes(&rng, (1 << 20) + 5);
  CHECK(Crc32cCombine(Crc32c(a), Crc32c(b), b.size()) == Crc32c(b, Crc32c(a)));
}

}  // namespace
}  // namespace tend
