// KeyHead (base/key_head.h): the order of two keys' heads is the bytewise order of the keys.
#include "base/key_head.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace tend {
namespace {

int Sign(int c) { return c < 0 ? -1 : c > 0 ? 1 : 0; }

TEST_CASE("two keys' heads, when they differ, order them as their bytes do", "[key_head]") {
  std::mt19937_64 rng(16);
  // Bytes from a small alphabet (so keys share prefixes and heads tie) with 0 and bytes above
  // 0x7f (compared unsigned), lengths 0-40, and keys that are prefixes of others.
  const std::vector<char> alphabet = {'\0', '\x01', 'a', 'b', '\x7f', '\x80', '\xff'};
  std::vector<std::string> keys = {"", std::string(1, '\0'), std::string(16, 'a'),
                                   std::string(17, 'a'), std::string(16, 'a') + '\0'};
  for (int i = 0; i < 600; ++i) {
    std::string k;
    const size_t n = rng() % 41;
    for (size_t j = 0; j < n; ++j) k.push_back(alphabet[rng() % alphabet.size()]);
    keys.push_back(k);
    keys.push_back(k.substr(0, rng() % (n + 1)));  // a prefix of it
  }
  int decided = 0, ties = 0;
  for (const std::string& a : keys) {
    for (const std::string& b : keys) {
      const int heads = KeyHead::Compare(KeyHead::Of(a), KeyHead::Of(b));
      const int bytes = Sign(absl::string_view(a).compare(b));
      if (heads == 0) {
        ++ties;
        // A tie only where the keys agree on their first 16 bytes, zeros past their ends.
        REQUIRE((a + std::string(16, '\0')).substr(0, 16) ==
                (b + std::string(16, '\0')).substr(0, 16));
      } else {
        ++decided;
        REQUIRE(heads == bytes);
      }
    }
  }
  CHECK(decided > 100000);
  CHECK(ties > 1000);
  // SortKeys agrees with sorting the strings.
  std::vector<std::string> sorted = keys;
  SortKeys(&sorted);
  std::sort(keys.begin(), keys.end());
  CHECK(sorted == keys);
}

TEST_CASE("a key's words from byte 16 on decide what its head leaves tied, as its bytes do",
          "[key_head]") {
  std::mt19937_64 rng(24);
  const std::vector<char> alphabet = {'\0', 'a', 'b', '\x80', '\xff'};
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) {
    // One 16-byte start for all (every head ties), then 0-16 bytes more.
    std::string k(16, 'p');
    const size_t n = rng() % 17;
    for (size_t j = 0; j < n; ++j) k.push_back(alphabet[rng() % alphabet.size()]);
    keys.push_back(k);
  }
  int decided = 0;
  for (const std::string& a : keys) {
    for (const std::string& b : keys) {
      REQUIRE(KeyHead::Compare(KeyHead::Of(a), KeyHead::Of(b)) == 0);
      const uint64_t wa = KeyHead::Word(a, 16), wb = KeyHead::Word(b, 16);
      if (wa == wb) {
        REQUIRE((a + std::string(8, '\0')).substr(16, 8) == (b + std::string(8, '\0')).substr(16, 8));
      } else {
        ++decided;
        REQUIRE((wa < wb ? -1 : 1) == Sign(absl::string_view(a).compare(b)));
      }
    }
  }
  CHECK(decided > 100000);
  // Both of Word's paths, a whole word and one cut short by the key's end.
  CHECK(KeyHead::Word("0123456789abcdefABCDEFGH", 16) == 0x4142434445464748ULL);
  CHECK(KeyHead::Word("0123456789abcdefABC", 16) == 0x4142430000000000ULL);
  CHECK(KeyHead::Word("0123", 16) == 0);
  CHECK(KeyHead::Of("\x80").high == 0x8000000000000000ULL);
}

TEST_CASE("keys that share their first 16, 32 or more bytes sort as their bytes do, run by run",
          "[key_head]") {
  std::mt19937_64 rng(48);
  const std::vector<char> alphabet = {'\0', 'a', 'b', '\x80', '\xff'};
  auto tail = [&](size_t max) {
    std::string t;
    const size_t n = rng() % (max + 1);
    for (size_t j = 0; j < n; ++j) t.push_back(alphabet[rng() % alphabet.size()]);
    return t;
  };
  for (const size_t shared : {0, 5, 15, 16, 17, 31, 32, 33, 47, 70}) {
    INFO("shared " << shared);
    std::vector<std::string> keys;
    const std::string prefix(shared, 'p');
    for (int i = 0; i < 2000; ++i) {
      std::string k = prefix.substr(0, rng() % 8 == 0 ? rng() % (shared + 1) : shared) + tail(40);
      keys.push_back(k);
      if (rng() % 4 == 0) keys.push_back(k);  // the same key twice
      if (rng() % 4 == 0) keys.push_back(k + std::string(1 + rng() % 20, '\0'));  // zeros after
    }
    std::vector<std::string> sorted = keys;
    SortKeys(&sorted);
    std::sort(keys.begin(), keys.end());
    REQUIRE(sorted == keys);
  }
  // Index keys as the engine writes them: a partition, a kind, a time shared by many, an id.
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) {
    std::string k = std::string("\0\0\0\x07L", 5);
    const uint64_t t = 1'780'000'000 + 900 * (rng() % 3);
    for (int b = 7; b >= 0; --b) k.push_back(static_cast<char>((t >> (8 * b)) & 0xff));
    k += "p" + std::to_string(10'000'000 + rng() % 100'000);
    keys.push_back(k);
  }
  std::vector<std::string> sorted = keys;
  SortKeys(&sorted);
  std::sort(keys.begin(), keys.end());
  CHECK(sorted == keys);
}

}  // namespace
}  // namespace tend
