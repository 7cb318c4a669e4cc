// Sorting many byte-string keys without reading them: a key's first 16 bytes as two big-endian
// integers (zeros past its end), kept in each sort entry beside what it sorts. Their order
// implies the keys' bytewise order (RocksDB's, and std::string's); equal heads leave the order to
// the keys themselves. Keys that differ early (a partition, a time, the start of an id) are
// ordered by two integer comparisons on memory the sort already holds, instead of two reads of
// strings elsewhere in memory: with 36-character patient ids, which no string keeps inline, each
// of those reads was a cache miss (docs/benchmarks.md, "Long patient ids").
#ifndef TEND_BASE_KEY_HEAD_H_
#define TEND_BASE_KEY_HEAD_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace tend {

struct KeyHead {
  uint64_t high = 0;  // bytes 0-7
  uint64_t low = 0;   // bytes 8-15

  // Bytes [0, 16) of `key`, big-endian, zeros past its end.
  static KeyHead Of(absl::string_view key) { return KeyHead{Word(key, 0), Word(key, 8)}; }
  // Bytes [pos, pos + 8) of `key` as a big-endian integer, zeros past its end: words of one key
  // compare as its bytes do.
  static uint64_t Word(absl::string_view key, size_t pos) {
    if (key.size() >= pos + 8) {
      uint64_t w;
      std::memcpy(&w, key.data() + pos, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      w = __builtin_bswap64(w);
#endif
      return w;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < 8; ++i) {
      const uint64_t byte = pos + i < key.size() ? static_cast<uint8_t>(key[pos + i]) : 0;
      w |= byte << (8 * (7 - i));
    }
    return w;
  }
  // -1, 0 or 1 as a's key is ordered before, undecided against, or after b's: 0 when the heads
  // are equal (the keys may still differ past byte 16, or in length).
  static int Compare(const KeyHead& a, const KeyHead& b) {
    if (a.high != b.high) return a.high < b.high ? -1 : 1;
    if (a.low != b.low) return a.low < b.low ? -1 : 1;
    return 0;
  }
};

// Sorts `keys` bytewise, comparing their heads first (the keys themselves on a tie).
inline void SortKeys(std::vector<std::string>* keys) {
  std::vector<std::pair<KeyHead, std::string*>> order(keys->size());
  for (size_t i = 0; i < keys->size(); ++i) order[i] = {KeyHead::Of((*keys)[i]), &(*keys)[i]};
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    const int c = KeyHead::Compare(a.first, b.first);
    return c != 0 ? c < 0 : *a.second < *b.second;
  });
  std::vector<std::string> sorted;
  sorted.reserve(keys->size());
  for (auto& [head, key] : order) sorted.push_back(std::move(*key));
  keys->swap(sorted);
}

}  // namespace tend

#endif  // TEND_BASE_KEY_HEAD_H_
