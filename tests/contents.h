// What a state changelog carries of a state directory (storage/changelog.h: states, outbox,
// timers, checkpoints), read into one comparable value, for tests of the changelog's writer and
// restore.
#ifndef TEND_TESTS_CONTENTS_H_
#define TEND_TESTS_CONTENTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "storage/storage.h"

namespace tend::testing {

struct Contents {
  std::map<std::string, std::string> states;  // patient -> serialized state
  std::vector<std::string> commands;          // "partition/command id", in outbox order
  std::vector<std::tuple<int32_t, int64_t, std::string, std::string>> timers;
  std::map<int32_t, std::string> checkpoints;  // partition -> serialized checkpoint
  bool operator==(const Contents&) const = default;
};

// The contents of partitions [0, partitions) of `storage`.
Contents ReadContents(const Storage& storage, int partitions);
// Every key of the `index` column family, in order (not carried: a restore rebuilds them).
std::vector<std::string> ReadIndex(const Storage& storage);

}  // namespace tend::testing

#endif  // TEND_TESTS_CONTENTS_H_
