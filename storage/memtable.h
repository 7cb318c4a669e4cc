// The memtables' sorted structure: a skip list (W. Pugh, "Skip lists: a probabilistic
// alternative to balanced trees", CACM 33(6), 1990) that RocksDB uses in place of its own
// through its public extension point (rocksdb/memtablerep.h).
//
// Why tend has its own: Debian builds RocksDB without NDEBUG, and its skip list's insert checks
// its invariants with the key comparator at every level of the search path: ~25 comparisons an
// insert, about a tenth of a replay's instructions (docs/design.md, "The memtable's skip
// list"). This one makes only its search's comparisons: 2.8-4.7 an insert in a replay's commits.
//
// What it is, for RocksDB: a MemTableRep for one writer at a time and any number of readers
// (DBOptions::allow_concurrent_memtable_write must be false; RocksDB refuses the open
// otherwise). An insert searches from the previous insert's place (a finger): a commit writes
// each family's keys in key order, so most inserts climb one or two levels, not the whole
// height. Readers take no lock: a node is linked bottom up with release stores after it is
// whole, and read with acquire loads. A family ordered by RocksDB's bytewise comparator (the
// default, and tend's) is compared inline, without RocksDB's virtual comparator. Not a persistent
// format: a memtable lives in memory only, and what RocksDB writes from it (WAL, tables) is the
// same whichever structure held it.
#ifndef TEND_STORAGE_MEMTABLE_H_
#define TEND_STORAGE_MEMTABLE_H_

#include <cstdint>
#include <memory>

#include "rocksdb/comparator.h"
#include "rocksdb/memtablerep.h"

namespace tend {

// A factory of tend's skip-list memtables, for ColumnFamilyOptions::memtable_factory of a family
// ordered by `family_comparator` (that family's ColumnFamilyOptions::comparator: RocksDB does not
// tell a memtable which it is). With RocksDB's BytewiseComparator() the lists compare entries
// inline; with any other, through the comparator RocksDB hands them. Thread safety: thread-safe
// (it holds nothing that changes).
std::shared_ptr<rocksdb::MemTableRepFactory> NewSkipListMemTables(
    const rocksdb::Comparator* family_comparator);

// How many of these memtables the process has created, by the comparisons they make: inline (a
// bytewise family), or through the comparator RocksDB handed them. For tests and diagnostics.
struct SkipListsCreated {
  int64_t inline_order = 0;
  int64_t rocks_order = 0;
};
SkipListsCreated SkipListsCreatedSoFar();

}  // namespace tend

#endif  // TEND_STORAGE_MEMTABLE_H_
