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

namespace key_head_internal {

struct Entry {
  KeyHead head;
  std::string* key;
};

// Sorts [first, last), whose keys agree on their bytes before `offset` (zeros past a key's
// end), by their bytes from `offset` on: by the 16 from there as a head, then run by run of
// equal heads the same way from 16 bytes further. Each level reads a tied run's keys once, in
// order, where comparing two keys on a tie read both, a cache miss each with ids no string
// keeps inline: an index's keys share their first 16 bytes in whole commits (a programme's and
// a staff member's keys all of them; last-activity keys, the kind and the time) (docs/
// benchmarks.md, "Index keys sorted run by run").
inline void SortFrom(Entry* first, Entry* last, size_t offset) {
  auto from = [offset](const std::string& k) {
    return absl::string_view(k).substr(std::min(offset, k.size()));
  };
  if (offset > 0) {
    for (Entry* e = first; e != last; ++e) e->head = KeyHead::Of(from(*e->key));
  }
  std::sort(first, last,
            [](const Entry& a, const Entry& b) { return KeyHead::Compare(a.head, b.head) < 0; });
  for (Entry* run = first; run != last;) {
    Entry* end = run + 1;
    while (end != last && KeyHead::Compare(end->head, run->head) == 0) ++end;
    if (end - run > 1) {
      const bool longer =
          std::any_of(run, end, [offset](const Entry& e) { return e.key->size() > offset + 16; });
      if (longer) {
        SortFrom(run, end, offset + 16);
      } else {
        // Equal bytes to their ends, zeros past them: the keys differ at most by trailing zero
        // bytes, and the shorter comes first.
        std::sort(run, end,
                  [](const Entry& a, const Entry& b) { return a.key->size() < b.key->size(); });
      }
    }
    run = end;
  }
}

}  // namespace key_head_internal

// Sorts `keys` bytewise, by their heads, and where heads tie by the next 16 bytes and so on.
inline void SortKeys(std::vector<std::string>* keys) {
  std::vector<key_head_internal::Entry> order(keys->size());
  for (size_t i = 0; i < keys->size(); ++i) order[i] = {KeyHead::Of((*keys)[i]), &(*keys)[i]};
  key_head_internal::SortFrom(order.data(), order.data() + order.size(), 0);
  std::vector<std::string> sorted;
  sorted.reserve(keys->size());
  for (auto& [head, key] : order) sorted.push_back(std::move(*key));
  keys->swap(sorted);
}

}  // namespace tend

#endif  // TEND_BASE_KEY_HEAD_H_
