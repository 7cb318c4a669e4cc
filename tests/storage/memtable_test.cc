// storage/memtable.h: tend's skip list answers RocksDB as a sorted map of its writes does, with
// RocksDB itself on top (a real DB in a temp dir): point reads, scans both ways, seeks, reads at
// snapshots, deletes and keys written twice in one batch, in a memtable, after the memtable is
// flushed through the skip list's iterator, and after a reopen replays the WAL into a new one;
// and readers on other threads see whatever a writer had committed before they looked.
#include "storage/memtable.h"

#include <rocksdb/comparator.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/transaction_db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/temp_dir.h"

namespace tend {
namespace {

using Model = std::map<std::string, std::string>;

rocksdb::Options TendMemtableOptions() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.memtable_factory = NewSkipListMemTables(options.comparator);
  options.allow_concurrent_memtable_write = false;
  options.write_buffer_size = 64 << 20;  // no flush but the test's own
  return options;
}

// `flush_recovered`: RocksDB's default, a reopen flushes what it replayed from the WAL; false
// keeps it in the memtable.
std::unique_ptr<rocksdb::DB> Open(const rocksdb::Options& options, const std::string& dir) {
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return std::unique_ptr<rocksdb::DB>(raw);
}

std::unique_ptr<rocksdb::DB> OpenDb(const std::string& dir, bool flush_recovered = true) {
  rocksdb::Options options = TendMemtableOptions();
  options.avoid_flush_during_recovery = !flush_recovered;
  return Open(options, dir);
}

// Keys of different lengths, one a prefix of others ("k1", "k12", "k123"), some ending in a
// byte above 0x7f (which orders after every ASCII byte, compared unsigned): the order the list
// keeps is bytewise, not by the number.
std::string Key(int i) {
  static constexpr const char* kEnds[] = {"", "\x80", "\xff", "-"};
  return "k" + std::to_string(i) + kEnds[i % 4];
}

// Keys of one length, in the order of their numbers.
std::string FixedKey(int i) {
  char key[16];
  std::snprintf(key, sizeof(key), "k%05d", i);
  return key;
}

constexpr int kKeys = 3000;

// Everything a reader can ask, at `snapshot` (nullptr: the latest), against the map of what
// was written up to it.
void CheckReads(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, const Model& model,
                std::mt19937* random) {
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  for (int i = 0; i < kKeys; ++i) {
    std::string value;
    const rocksdb::Status s = db->Get(read, Key(i), &value);
    const auto it = model.find(Key(i));
    INFO(Key(i));
    if (it == model.end()) {
      CHECK(s.IsNotFound());
    } else {
      REQUIRE(s.ok());
      CHECK(value == it->second);
    }
  }
  std::unique_ptr<rocksdb::Iterator> iter(db->NewIterator(read));
  Model forward;
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    forward[iter->key().ToString()] = iter->value().ToString();
  }
  REQUIRE(iter->status().ok());
  CHECK(forward == model);
  std::vector<std::string> backward;
  for (iter->SeekToLast(); iter->Valid(); iter->Prev()) backward.push_back(iter->key().ToString());
  std::vector<std::string> expected;
  for (auto it = model.rbegin(); it != model.rend(); ++it) expected.push_back(it->first);
  CHECK(backward == expected);
  // Seeks to keys present and absent ("k1234a" lies between two keys), then a step each way.
  std::uniform_int_distribution<int> any(0, kKeys - 1);
  for (int n = 0; n < 300; ++n) {
    const std::string target = Key(any(*random)) + (n % 2 == 0 ? "" : "a");
    INFO(target);
    iter->Seek(target);
    auto at = model.lower_bound(target);
    REQUIRE(iter->Valid() == (at != model.end()));
    if (at == model.end()) continue;
    CHECK(iter->key().ToString() == at->first);
    iter->Prev();
    REQUIRE(iter->Valid() == (at != model.begin()));
    if (at != model.begin()) CHECK(iter->key().ToString() == std::prev(at)->first);
    iter->SeekForPrev(target);
    auto last = model.upper_bound(target);
    REQUIRE(iter->Valid() == (last != model.begin()));
    if (last == model.begin()) continue;
    --last;
    CHECK(iter->key().ToString() == last->first);
    iter->Next();
    REQUIRE(iter->Valid() == (std::next(last) != model.end()));
    if (std::next(last) != model.end()) CHECK(iter->key().ToString() == std::next(last)->first);
  }
}

TEST_CASE(
    "tend's memtable reads as a sorted map of the writes: in memory and flushed and "
    "reopened",
    "[storage]") {
  testing::TempDir dir;
  const SkipListsCreated before = SkipListsCreatedSoFar();
  std::unique_ptr<rocksdb::DB> db = OpenDb(dir.path());
  // The default family is ordered by RocksDB's bytewise comparator: its lists compare inline.
  CHECK(SkipListsCreatedSoFar().inline_order > before.inline_order);
  CHECK(SkipListsCreatedSoFar().rocks_order == before.rocks_order);
  std::mt19937 random(17);
  std::uniform_int_distribution<int> any(0, kKeys - 1);
  Model model;
  struct Taken {
    const rocksdb::Snapshot* snapshot;
    Model model;
  };
  std::vector<Taken> snapshots;
  int round = 0;
  // Batches of up to 300 writes, a key sometimes twice in one batch (two entries, the later
  // sequence number first), in key order in half of them (as tend's commits write) and in any
  // order in the others, a tenth of them deletes of keys there or not.
  auto write_batches = [&](int batches) {
    for (int b = 0; b < batches; ++b, ++round) {
      std::vector<std::pair<std::string, bool>> writes;  // key, put
      const int n = 1 + static_cast<int>(random() % 300);
      for (int i = 0; i < n; ++i) writes.emplace_back(Key(any(random)), random() % 10 != 0);
      if (b % 2 == 0) {
        std::stable_sort(writes.begin(), writes.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
      }
      rocksdb::WriteBatch batch;
      for (size_t i = 0; i < writes.size(); ++i) {
        const auto& [key, put] = writes[i];
        if (put) {
          const std::string value = key + "@" + std::to_string(round) + "." + std::to_string(i);
          REQUIRE(batch.Put(key, value).ok());
          model[key] = value;
        } else {
          REQUIRE(batch.Delete(key).ok());
          model.erase(key);
        }
      }
      REQUIRE(db->Write(rocksdb::WriteOptions(), &batch).ok());
      if (b % 40 == 39) snapshots.push_back({db->GetSnapshot(), model});
    }
  };
  write_batches(200);
  std::string entries;
  REQUIRE(db->GetProperty("rocksdb.num-entries-active-mem-table", &entries));
  CHECK(std::stoll(entries) > 20000);  // all of it still in the memtable
  CheckReads(db.get(), nullptr, model, &random);
  for (const Taken& taken : snapshots) CheckReads(db.get(), taken.snapshot, taken.model, &random);

  // Flushed: the table is written from the skip list's iterator.
  REQUIRE(db->Flush(rocksdb::FlushOptions()).ok());
  REQUIRE(db->GetProperty("rocksdb.num-entries-active-mem-table", &entries));
  CHECK(entries == "0");
  CheckReads(db.get(), nullptr, model, &random);
  for (const Taken& taken : snapshots) CheckReads(db.get(), taken.snapshot, taken.model, &random);
  for (const Taken& taken : snapshots) db->ReleaseSnapshot(taken.snapshot);
  snapshots.clear();

  // More on top of the table, left in the WAL at close and replayed into a new memtable.
  write_batches(100);
  CheckReads(db.get(), nullptr, model, &random);
  for (const Taken& taken : snapshots) db->ReleaseSnapshot(taken.snapshot);
  db.reset();
  db = OpenDb(dir.path(), /*flush_recovered=*/false);
  REQUIRE(db->GetProperty("rocksdb.num-entries-active-mem-table", &entries));
  CHECK(std::stoll(entries) > 10000);
  CheckReads(db.get(), nullptr, model, &random);
}

// A comparator RocksDB does not ship: letters compared without their case (a probe of a few
// keys cannot tell it from the bytewise order: the factory is told).
class CaseInsensitive final : public rocksdb::Comparator {
 public:
  const char* Name() const override { return "tend.test.CaseInsensitive"; }
  int Compare(const rocksdb::Slice& a, const rocksdb::Slice& b) const override {
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      const int x = std::tolower(static_cast<unsigned char>(a[i]));
      const int y = std::tolower(static_cast<unsigned char>(b[i]));
      if (x != y) return x < y ? -1 : 1;
    }
    return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
  }
  void FindShortestSeparator(std::string*, const rocksdb::Slice&) const override {}
  void FindShortSuccessor(std::string*) const override {}
};

// Writes `keys` (shuffled) in batches of 100 and checks they read back in `order`, in the memtable
// and flushed: a scan, and a point read and a seek of each of 200 of them.
template <typename Order>
void CheckOrder(rocksdb::DB* db, std::vector<std::string> keys, Order order) {
  std::mt19937 random(5);
  std::shuffle(keys.begin(), keys.end(), random);
  for (size_t i = 0; i < keys.size(); i += 100) {
    rocksdb::WriteBatch batch;
    for (size_t j = i; j < std::min(keys.size(), i + 100); ++j) {
      REQUIRE(batch.Put(keys[j], "v" + keys[j]).ok());
    }
    REQUIRE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  }
  std::vector<std::string> expected = keys;
  std::sort(expected.begin(), expected.end(), order);
  for (const bool flushed : {false, true}) {
    INFO("flushed: " << flushed);
    if (flushed) REQUIRE(db->Flush(rocksdb::FlushOptions()).ok());
    std::vector<std::string> read;
    std::unique_ptr<rocksdb::Iterator> iter(db->NewIterator(rocksdb::ReadOptions()));
    for (iter->SeekToFirst(); iter->Valid(); iter->Next()) read.push_back(iter->key().ToString());
    REQUIRE(iter->status().ok());
    CHECK(read == expected);
    for (int n = 0; n < 200; ++n) {
      const std::string& key = keys[random() % keys.size()];
      std::string value;
      REQUIRE(db->Get(rocksdb::ReadOptions(), key, &value).ok());
      CHECK(value == "v" + key);
      iter->Seek(key);
      REQUIRE(iter->Valid());
      CHECK(iter->key().ToString() == key);
    }
  }
}

std::unique_ptr<rocksdb::DB> OpenWith(const std::string& dir, const rocksdb::Comparator* family,
                                      const rocksdb::Comparator* told) {
  rocksdb::Options options = TendMemtableOptions();
  options.comparator = family;
  options.memtable_factory = NewSkipListMemTables(told);
  return Open(options, dir);
}

TEST_CASE("tend's memtable keeps the order of a family's own comparator when it is not bytewise",
          "[storage]") {
  // A family ordered otherwise gets lists that ask RocksDB's comparator: told so by the factory
  // (RocksDB's reverse bytewise comparator, a comparator of its own), or, when the factory was
  // made for a bytewise family and given to another, because RocksDB's comparator orders the
  // probe entries otherwise. Its keys come back in its order, in the memtable and flushed.
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(Key(i));
  const CaseInsensitive case_insensitive;
  struct Family {
    const char* name;
    const rocksdb::Comparator* comparator;
    const rocksdb::Comparator* told;
  };
  for (const Family& family : {
           Family{"reverse, told", rocksdb::ReverseBytewiseComparator(),
                  rocksdb::ReverseBytewiseComparator()},
           Family{"reverse, told bytewise", rocksdb::ReverseBytewiseComparator(),
                  rocksdb::BytewiseComparator()},
           Family{"case-insensitive, told", &case_insensitive, &case_insensitive},
       }) {
    INFO(family.name);
    testing::TempDir dir;
    const SkipListsCreated before = SkipListsCreatedSoFar();
    std::unique_ptr<rocksdb::DB> db = OpenWith(dir.path(), family.comparator, family.told);
    CHECK(SkipListsCreatedSoFar().rocks_order > before.rocks_order);
    CHECK(SkipListsCreatedSoFar().inline_order == before.inline_order);
    std::vector<std::string> family_keys = keys;
    if (family.comparator == &case_insensitive) {
      // Keys equal but for case are one key to it: one of each.
      for (int i = 0; i < 200; ++i) family_keys.push_back("K" + std::to_string(i) + "x");
    }
    CheckOrder(db.get(), family_keys, [&](const std::string& a, const std::string& b) {
      return family.comparator->Compare(a, b) < 0;
    });
  }
}

TEST_CASE("tend's memtable orders long keys that share a long prefix, and keys past 16 KiB",
          "[storage]") {
  // Keys of 200 bytes and more that differ only after their first 200 (a two-byte length), and
  // keys of 16 KiB and more (a three-byte length), in the bytewise order, compared inline.
  testing::TempDir dir;
  const SkipListsCreated before = SkipListsCreatedSoFar();
  std::unique_ptr<rocksdb::DB> db =
      OpenWith(dir.path(), rocksdb::BytewiseComparator(), rocksdb::BytewiseComparator());
  CHECK(SkipListsCreatedSoFar().inline_order > before.inline_order);
  std::vector<std::string> keys;
  for (int i = 0; i < 600; ++i) keys.push_back(std::string(200, 'k') + Key(i));
  for (int i = 0; i < 40; ++i) keys.push_back(std::string(16384 + i % 3, 'p') + Key(i));
  CheckOrder(db.get(), keys, std::less<>());
}

TEST_CASE(
    "tend's memtable refuses a second entry of one key and sequence number, whatever its "
    "type, as RocksDB's does",
    "[storage]") {
  // A write-prepared transaction database gives a whole batch one sequence number. A batch that
  // puts a key and then deletes it makes two entries of that key and number: RocksDB expects the
  // memtable to refuse the second (they compare equal: the type is not compared), and then writes
  // it at the next number. The key is then deleted.
  testing::TempDir dir;
  const SkipListsCreated before = SkipListsCreatedSoFar();
  rocksdb::Options options = TendMemtableOptions();
  rocksdb::TransactionDBOptions transaction_options;
  transaction_options.write_policy = rocksdb::WRITE_PREPARED;
  rocksdb::TransactionDB* raw = nullptr;
  const rocksdb::Status opened =
      rocksdb::TransactionDB::Open(options, transaction_options, dir.path(), &raw);
  INFO(opened.ToString());
  REQUIRE(opened.ok());
  std::unique_ptr<rocksdb::TransactionDB> db(raw);
  // The inline order is what is tested: RocksDB's own comparator refuses the second entry anyway.
  CHECK(SkipListsCreatedSoFar().inline_order > before.inline_order);
  rocksdb::WriteBatch batch;
  REQUIRE(batch.Put("k", "v").ok());
  REQUIRE(batch.Delete("k").ok());
  REQUIRE(batch.Put("j", "v1").ok());
  REQUIRE(batch.Put("j", "v2").ok());
  REQUIRE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  std::string value;
  CHECK(db->Get(rocksdb::ReadOptions(), "k", &value).IsNotFound());
  REQUIRE(db->Get(rocksdb::ReadOptions(), "j", &value).ok());
  CHECK(value == "v2");
}

// The estimate is RocksDB's own skip list's (steps at level i count 4^i entries): rough, and not
// even monotonic in the key, so only what it must get right is checked.
TEST_CASE("tend's memtable estimates a range's entries from its levels", "[storage]") {
  testing::TempDir dir;
  std::unique_ptr<rocksdb::DB> db = OpenDb(dir.path());
  constexpr int kEntries = 20000;
  std::vector<int> order(kEntries);
  for (int i = 0; i < kEntries; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  for (int i : order) REQUIRE(db->Put(rocksdb::WriteOptions(), FixedKey(i), "v").ok());
  auto estimate = [&](const std::string& start, const std::string& limit) {
    uint64_t count = 0, bytes = 0;
    db->GetApproximateMemTableStats(db->DefaultColumnFamily(), rocksdb::Range(start, limit), &count,
                                    &bytes);
    return count;
  };
  const uint64_t all = estimate("k", "l");
  INFO(all);
  CHECK(all >= kEntries / 4);
  CHECK(all <= kEntries);          // RocksDB caps it at the memtable's entries
  CHECK(estimate("a", "b") == 0);  // before every key
  CHECK(estimate("x", "y") == 0);  // after every key
  const uint64_t low = estimate("k", FixedKey(kEntries / 2)),
                 high = estimate(FixedKey(kEntries / 2), "l");
  INFO(low << " " << high);
  CHECK(low >= kEntries / 8);
  CHECK(high >= kEntries / 8);
}

// One writer, two readers, no lock between them: a reader must find every key committed before
// it looked, by point read and in scans both ways, and scans must come out in key order. Small
// write buffers, so that reads span the active memtable, immutable ones being flushed (their
// iterators created and destroyed on RocksDB's flush thread) and tables. (On x86 a missing
// acquire or release would not show here: its loads and stores are ordered anyway.)
TEST_CASE("readers on other threads see what the writer committed before they looked",
          "[storage]") {
  testing::TempDir dir;
  rocksdb::Options options = TendMemtableOptions();
  options.write_buffer_size = 256 << 10;
  options.max_write_buffer_number = 4;
  std::unique_ptr<rocksdb::DB> db = Open(options, dir.path());
  constexpr int kWrites = 60000;
  std::vector<std::string> keys;
  for (int i = 0; i < kWrites; ++i) keys.push_back(Key(i) + "-" + std::to_string(i * 7919 % 101));
  std::shuffle(keys.begin(), keys.end(), std::mt19937(5));
  std::atomic<int> committed{0};
  std::atomic<bool> failed{false};
  std::atomic<int64_t> reads{0}, scans{0};
  std::thread writer([&] {
    for (int at = 0; at < kWrites;) {
      const int end = std::min(kWrites, at + 1 + at % 97);
      std::vector<std::string> batch_keys(keys.begin() + at, keys.begin() + end);
      if (at % 2 == 0) std::sort(batch_keys.begin(), batch_keys.end());
      rocksdb::WriteBatch batch;
      for (const std::string& key : batch_keys) batch.Put(key, key);
      if (!db->Write(rocksdb::WriteOptions(), &batch).ok()) failed = true;
      committed.store(end, std::memory_order_release);
      at = end;
    }
  });
  auto reader = [&](unsigned seed) {
    std::mt19937 random(seed);
    // Every twentieth look scans, the first one too (whichever round the writer's first commit
    // is seen in), forward and backward by turns.
    for (int looks = 0; committed.load(std::memory_order_acquire) < kWrites && !failed;) {
      const int seen = committed.load(std::memory_order_acquire);
      if (seen == 0) continue;
      for (int n = 0; n < 50; ++n) {
        const std::string& key = keys[random() % seen];
        std::string value;
        if (!db->Get(rocksdb::ReadOptions(), key, &value).ok() || value != key) failed = true;
        reads.fetch_add(1, std::memory_order_relaxed);
      }
      const int look = looks++;
      if (look % 20 != 0) continue;
      std::unique_ptr<rocksdb::Iterator> iter(db->NewIterator(rocksdb::ReadOptions()));
      int count = 0;
      std::string last;
      const bool forward = look % 40 == 0;
      for (forward ? iter->SeekToFirst() : iter->SeekToLast(); iter->Valid();
           forward ? iter->Next() : iter->Prev(), ++count) {
        const std::string key = iter->key().ToString();
        if (count > 0 && !(forward ? last < key : key < last)) failed = true;
        last = key;
      }
      if (count < seen) failed = true;
      // A key seen committed, sought for and just before: there.
      const std::string& key = keys[random() % seen];
      iter->SeekForPrev(key);
      if (!iter->Valid() || iter->key().ToString() != key) failed = true;
      scans.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread first(reader, 1), second(reader, 2);
  writer.join();
  first.join();
  second.join();
  INFO(reads.load() << " reads, " << scans.load() << " scans");
  CHECK_FALSE(failed.load());
  CHECK(scans.load() > 0);  // the readers ran beside the writer
  // Everything there at the end, through memtables and tables.
  std::unique_ptr<rocksdb::Iterator> iter(db->NewIterator(rocksdb::ReadOptions()));
  int count = 0;
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) ++count;
  CHECK(count == kWrites);
  // Memtables were flushed while the readers read: there are tables (on any level: level 0's
  // may have been compacted further by the end).
  std::string table_bytes;
  REQUIRE(db->GetProperty("rocksdb.total-sst-files-size", &table_bytes));
  CHECK(std::stoll(table_bytes) > 0);
}

// More iterators at once than a thread keeps spare storage for (IteratorStorage::kKept), each
// over the memtable, destroyed together and created again: every one reads the same.
TEST_CASE("many iterators open at once over one memtable each read the whole of it", "[storage]") {
  testing::TempDir dir;
  std::unique_ptr<rocksdb::DB> db = OpenDb(dir.path());
  for (int i = 0; i < 500; ++i) REQUIRE(db->Put(rocksdb::WriteOptions(), FixedKey(i), "v").ok());
  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<rocksdb::Iterator>> open;
    for (int n = 0; n < 80; ++n) {
      open.emplace_back(db->NewIterator(rocksdb::ReadOptions()));
      open.back()->Seek(FixedKey(n));
    }
    for (int n = 0; n < 80; ++n) {
      int count = 0;
      for (; open[n]->Valid(); open[n]->Next()) ++count;
      CHECK(count == 500 - n);
    }
  }
}

}  // namespace
}  // namespace tend
