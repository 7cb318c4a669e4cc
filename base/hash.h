// The one 64-bit hash of tend: FNV-1a 64 (Fowler, Noll & Vo; constants from
// draft-eastlake-fnv) finished with the splitmix64 finalizer (Steele, Lea & Flood 2014, "Fast
// splittable pseudorandom number generators") for avalanche. Platform-independent and stable
// forever: event fingerprints (on disk, storage/format.h), command ids (in the outbox and at the
// receivers) and the simulator's streams are made of it.
#ifndef TEND_BASE_HASH_H_
#define TEND_BASE_HASH_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace tend {

inline constexpr uint64_t kFnv1a64OffsetBasis = 0xcbf29ce484222325ULL;
inline constexpr uint64_t kFnv1a64Prime = 0x100000001b3ULL;
// The increment of the splitmix64 generator (2^64 / golden ratio).
inline constexpr uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ULL;

// FNV-1a 64 of `s` continued from `h`: hashing pieces in turn hashes the joined string.
inline uint64_t Fnv1a64(uint64_t h, absl::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnv1a64Prime;
  }
  return h;
}

// The splitmix64 output function (the generator adds kSplitMix64Gamma to its state first).
inline uint64_t SplitMix64Finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a 64 of `s`, finalized: a well-mixed 64-bit fingerprint.
inline uint64_t Fingerprint64(absl::string_view s) {
  return SplitMix64Finalize(Fnv1a64(kFnv1a64OffsetBasis, s));
}

}  // namespace tend

#endif  // TEND_BASE_HASH_H_
