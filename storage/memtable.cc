#include "storage/memtable.h"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "rocksdb/comparator.h"
#include "rocksdb/version.h"
#include "storage/format.h"

namespace tend {
namespace {

using rocksdb::KeyHandle;
using rocksdb::MemTableRep;
using rocksdb::Slice;

// A node is its entry (the bytes RocksDB encodes: the length-prefixed internal key, then the
// value) with its links just before it: link i at entry - (i + 1) * sizeof(Link). A node is named
// by its entry's address; a link holds the next node's entry, or nullptr at the end of a level.
using Link = std::atomic<const char*>;

// A node's height is 1 + the number of times a 1-in-4 draw came up: a quarter of the nodes reach
// level 1, a sixteenth level 2 (Pugh's p = 1/4). 4^12 is 16.7M entries, beyond any memtable
// tend configures, before the top level stops thinning the ones below.
constexpr int kMaxHeight = 12;
constexpr uint32_t kBranching = 4;

inline Link* LinkOf(const char* node, int level) {
  return reinterpret_cast<Link*>(const_cast<char*>(node)) - (level + 1);
}

inline const char* Next(const char* node, int level) {
  return LinkOf(node, level)->load(std::memory_order_acquire);
}

std::atomic<int64_t> lists_inline{0}, lists_rocks{0};  // SkipListsCreated()

// An entry, as RocksDB 7.8's MemTable::Add encodes it (db/memtable.cc): the internal key's length
// as a varint32, the internal key, then the value's length and the value. An internal key is the
// user key, then 8 little-endian bytes of (sequence << 8 | type) (db/dbformat.h).
// RocksDB encodes every entry itself (a write's, or a WAL record's replayed), so the length is a
// varint32 of at most five bytes; the loop stops at the fifth whatever the bytes say.
inline Slice InternalKeyOf(const char* entry) {
  const auto* p = reinterpret_cast<const unsigned char*>(entry);
  uint32_t length = 0;
  int shift = 0;
  while ((*p & 0x80) && shift < 28) {  // a varint32: seven bits a byte, low first
    length |= static_cast<uint32_t>(*p++ & 0x7f) << shift;
    shift += 7;
  }
  length |= static_cast<uint32_t>(*p++) << shift;
  return Slice(reinterpret_cast<const char*>(p), length);
}

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "RocksDB's fixed64 is little-endian: read it with a byte swap here");

// The sequence number of an internal key (its trailer without the type byte).
inline uint64_t SequenceOf(const Slice& internal_key) {
  uint64_t trailer;
  std::memcpy(&trailer, internal_key.data() + internal_key.size() - 8, sizeof(trailer));
  return trailer >> 8;
}

// Two internal keys in the order RocksDB 7.8's memtable compares them over the bytewise
// comparator (MemTable::KeyComparator, InternalKeyComparator::CompareKeySeq): user keys by their
// bytes (unsigned, a prefix before the longer key), equal user keys by sequence number, the
// larger (newer) first. The type is not compared: two entries of one key and one sequence number
// are equal whatever their types, and the second is refused (InsertKey), which RocksDB relies on
// when a whole batch takes one sequence number (seq_per_batch, as write-prepared transactions
// write).
inline int CompareBytewise(const Slice& a, const Slice& b) {
  const size_t user_a = a.size() - 8, user_b = b.size() - 8;
  const int c = std::memcmp(a.data(), b.data(), std::min(user_a, user_b));
  if (c != 0) return c;
  if (user_a != user_b) return user_a < user_b ? -1 : 1;
  const uint64_t sequence_a = SequenceOf(a), sequence_b = SequenceOf(b);
  return sequence_a > sequence_b ? -1 : sequence_a < sequence_b ? 1 : 0;
}

// The list's comparisons: of two entries, or of an entry with an internal key. RocksDB hands a
// memtable its family's MemTable::KeyComparator, whose every call is virtual, decodes both lengths
// out of line and counts itself in the thread's perf context: ~112 instructions a comparison, a
// fifth of a commit's memtable inserts (docs/design.md, "The memtable's skip list"). For a family
// ordered by RocksDB's bytewise comparator (the default; tend sets no other) the list compares
// inline instead. Nothing in RocksDB's interface tells a memtable its family's comparator: the
// factory is given it (NewSkipListMemTables), and a list compares inline only when that is
// RocksDB's BytewiseComparator() itself and RocksDB's comparator also orders a set of probe
// entries as the inline order does (a factory given to a family other than the one it was made
// for, or a family with user timestamps, would not); else every comparison is RocksDB's.
class EntryOrder {
 public:
  EntryOrder(const MemTableRep::KeyComparator& rocks, bool bytewise_family)
      : rocks_(rocks), inline_(bytewise_family && AgreesWithRocks(rocks)) {}

  bool is_inline() const { return inline_; }

  int operator()(const char* a, const char* b) const {
    return inline_ ? CompareBytewise(InternalKeyOf(a), InternalKeyOf(b)) : rocks_(a, b);
  }
  int operator()(const char* entry, const Slice& internal_key) const {
    return inline_ ? CompareBytewise(InternalKeyOf(entry), internal_key)
                   : rocks_(entry, internal_key);
  }

 private:
  static std::string Entry(const std::string& user_key, uint64_t sequence, uint8_t type = 1) {
    std::string entry;
    storage_format::AppendVarint32(static_cast<uint32_t>(user_key.size() + 8), &entry);
    entry += user_key;
    const uint64_t trailer = sequence << 8 | type;  // 1: kTypeValue, 0: kTypeDeletion
    char bytes[8];
    std::memcpy(bytes, &trailer, sizeof(bytes));
    entry.append(bytes, sizeof(bytes));
    entry.push_back('\0');  // an empty value
    return entry;
  }

  static int Sign(int c) { return (c > 0) - (c < 0); }

  // Every pair of the probes, both ways, as entries and as an entry against an internal key: user
  // keys that differ in a byte, in a byte above 0x7f, in case, in length with one the other's
  // prefix (longer than the 8 bytes a timestamp would take), keys of 201 bytes (a two-byte
  // length) that differ only in their last byte, and one user key at two sequence numbers and
  // at one sequence number with two types.
  static bool AgreesWithRocks(const MemTableRep::KeyComparator& rocks) {
    const std::string base = "tend-memtable-probe-";
    const std::string long_key(200, 'z');
    const std::vector<std::string> probes = {
        Entry(base + "a", 7),
        Entry(base + "b", 7),
        Entry(base + "B", 7),
        Entry(base + "\x80", 7),
        Entry(base + "a-longer-than-a-timestamp", 7),
        Entry(base + "a", 9),
        Entry(base + "a", 9, /*type=*/0),
        Entry(long_key + "a", 7),
        Entry(long_key + "b", 7),
    };
    for (const std::string& a : probes) {
      for (const std::string& b : probes) {
        const int expected =
            Sign(CompareBytewise(InternalKeyOf(a.data()), InternalKeyOf(b.data())));
        if (Sign(rocks(a.data(), b.data())) != expected ||
            Sign(rocks(a.data(), InternalKeyOf(b.data()))) != expected) {
          return false;
        }
      }
    }
    return true;
  }

  const MemTableRep::KeyComparator& rocks_;
  const bool inline_;
};

class SkipList final : public MemTableRep {
 public:
  SkipList(const KeyComparator& compare, bool bytewise_family, rocksdb::Allocator* allocator)
      : MemTableRep(allocator), compare_(compare, bytewise_family) {
    (compare_.is_inline() ? lists_inline : lists_rocks).fetch_add(1, std::memory_order_relaxed);
    for (Link& link : head_links_) link.store(nullptr, std::memory_order_relaxed);
    finger_.fill(head_);
  }

  // Room for an entry of `len` bytes and its links, from the memtable's arena (which the memtable
  // counts): the height is drawn here, since the links come first, and kept in link 0 until the
  // insert links the node.
  KeyHandle Allocate(const size_t len, char** buf) override {
    const int height = RandomHeight();
    const size_t links = sizeof(Link) * static_cast<size_t>(height);
    char* raw = nullptr;
    MemTableRep::Allocate(links + len + alignof(Link) - 1, &raw);
    const uintptr_t aligned =
        (reinterpret_cast<uintptr_t>(raw) + alignof(Link) - 1) & ~(uintptr_t{alignof(Link)} - 1);
    char* entry = reinterpret_cast<char*>(aligned) + links;
    for (int i = 0; i < height; ++i) new (LinkOf(entry, i)) Link(nullptr);
    LinkOf(entry, 0)->store(reinterpret_cast<const char*>(static_cast<uintptr_t>(height)),
                            std::memory_order_relaxed);
    *buf = entry;
    return entry;
  }

  void Insert(KeyHandle handle) override { InsertKey(handle); }

  // False, and nothing inserted, when an equal entry is there (the same key, sequence number
  // and type: RocksDB then answers the write with TryAgain).
  bool InsertKey(KeyHandle handle) override {
    const char* entry = static_cast<const char*>(handle);
    const int height = static_cast<int>(
        reinterpret_cast<uintptr_t>(LinkOf(entry, 0)->load(std::memory_order_relaxed)));
    const int top = height_.load(std::memory_order_relaxed);
    // The lowest level at which the finger's node and its successor still enclose the entry.
    // Where one level does, every level above does too (the finger's node there lies at or
    // before the one below, its successor at or after), so those are kept as they are and the
    // search goes down from there: O(log D) comparisons for an entry D entries past the last.
    int level = 0;
    while (level < top) {
      const char* before = finger_[level];
      const char* after = Next(before, level);
      if ((before == head_ || compare_(before, entry) < 0) &&
          (after == nullptr || compare_(entry, after) < 0)) {
        break;
      }
      ++level;
    }
    const char* node = level == top ? head_ : finger_[level];
    for (int i = level - 1; i >= 0; --i) {
      for (;;) {
        const char* next = Next(node, i);
        if (next == nullptr) break;
        const int c = compare_(next, entry);
        if (c == 0) {
          finger_.fill(head_);  // part-way through: searched afresh next time
          return false;
        }
        if (c > 0) break;
        node = next;
      }
      finger_[i] = node;
    }
    if (height > top) {
      for (int i = top; i < height; ++i) finger_[i] = head_;
      // Readers that load the old height miss nothing: the head's links at the new levels lead
      // only to this node, which they find from the levels below.
      height_.store(height, std::memory_order_relaxed);
    }
    for (int i = 0; i < height; ++i) {
      // Link 0 held the height: it is overwritten here, after it was read above.
      LinkOf(entry, i)->store(Next(finger_[i], i), std::memory_order_relaxed);
      LinkOf(finger_[i], i)->store(entry, std::memory_order_release);
      finger_[i] = entry;
    }
    return true;
  }

  // Asked for by the interface; RocksDB 7.8's MemTable does not call it (no test reaches it).
  bool Contains(const char* key) const override {
    const char* node = Search(key).second;
    return node != nullptr && compare_(node, key) == 0;
  }

  // The entries from `start_ikey` up to `end_ikey` (internal keys), estimated from the levels a
  // search walks (each step at level i passes about 4^i entries), as RocksDB's own does.
  uint64_t ApproximateNumEntries(const Slice& start_ikey, const Slice& end_ikey) override {
    const uint64_t start = EstimateBelow(start_ikey);
    const uint64_t end = EstimateBelow(end_ikey);
    return end > start ? end - start : 0;
  }

  // Every byte is on the memtable's arena, which the memtable counts itself.
  size_t ApproximateMemoryUsage() override { return 0; }

  class Iterator;
  MemTableRep::Iterator* GetIterator(rocksdb::Arena* arena) override;
  MemTableRep::Iterator* GetDynamicPrefixIterator(rocksdb::Arena* arena) override;
  void Get(const rocksdb::LookupKey& key, void* callback_args,
           bool (*callback_func)(void* arg, const char* entry)) override;

 private:
  int RandomHeight() {
    int height = 1;
    while (height < kMaxHeight && random_() % kBranching == 0) ++height;
    return height;
  }

  // Where `key` (an entry, or an internal key) would go: the last node before it (or head_) and
  // the first at or after it (or nullptr).
  template <typename Key>
  std::pair<const char*, const char*> Search(const Key& key) const {
    const char* node = head_;
    int level = height_.load(std::memory_order_relaxed) - 1;
    const char* known_after = nullptr;  // a node already compared at a higher level
    for (;;) {
      const char* next = Next(node, level);
      if (next != nullptr && next != known_after && compare_(next, key) < 0) {
        node = next;
      } else if (level == 0) {
        return {node, next};
      } else {
        known_after = next;
        --level;
      }
    }
  }

  // The last node, or head_.
  const char* FindLast() const {
    const char* node = head_;
    for (int level = height_.load(std::memory_order_relaxed) - 1; level >= 0; --level) {
      for (const char* next = Next(node, level); next != nullptr; next = Next(node, level)) {
        node = next;
      }
    }
    return node;
  }

  uint64_t EstimateBelow(const Slice& ikey) const {
    uint64_t count = 0;
    const char* node = head_;
    for (int level = height_.load(std::memory_order_relaxed) - 1; level >= 0; --level) {
      count *= kBranching;
      for (const char* next = Next(node, level); next != nullptr && compare_(next, ikey) < 0;
           next = Next(node, level)) {
        node = next;
        ++count;
      }
    }
    return count;
  }

  const EntryOrder compare_;
  std::array<Link, kMaxHeight> head_links_;
  // The head is a node without an entry: its links are head_links_, so its address is one past
  // them. It is never compared.
  const char* const head_ = reinterpret_cast<const char*>(head_links_.data() + kMaxHeight);
  std::atomic<int> height_{1};
  // The writer's own (RocksDB has one writer at a time and orders them): where the last insert
  // went, level by level (its node, or the last node before it at levels above its height), and
  // the draws for heights (std::minstd_rand: the "minimal standard" multiplicative generator,
  // Park, Miller and Stockmeyer, CACM 36(7), 1993).
  std::array<const char*, kMaxHeight> finger_;
  std::minstd_rand random_{0x7e4d};
};

// Storage for iterators, kept by the thread that destroyed them. RocksDB destroys an iterator it
// asked for with an arena without freeing it (its arena is not the iterator's), and may not grow
// the memtable's own arena once the memtable is immutable (it counted the memtable's bytes then),
// so an iterator's bytes are tend's: its destructor gives them to its thread, which reuses them
// for the next iterator it creates. Only the thread that destroyed an iterator touches its bytes
// again, after the destruction has ended (the base class's destructor runs after ours): a
// thread's spares beyond kKept are freed when it gives one more, never the one being given.
class IteratorStorage {
 public:
  static constexpr size_t kKept = 32;
  static void* Take(size_t size) {
    Spares* spares = Local();
    if (spares == nullptr || spares->free.empty()) return ::operator new(size);
    void* storage = spares->free.back();
    spares->free.pop_back();
    return storage;
  }
  static void Give(void* storage) {
    Spares* spares = Local();
    if (spares == nullptr) return;  // the thread is ending: its last few bytes go unreused
    while (spares->free.size() >= kKept) {
      ::operator delete(spares->free.back());
      spares->free.pop_back();
    }
    spares->free.push_back(storage);
  }

 private:
  struct Spares {
    std::vector<void*> free;
    ~Spares() {
      for (void* storage : free) ::operator delete(storage);
      gone = true;
    }
  };
  // Set once the thread's Spares are destroyed (a trivial thread_local, which outlives it): an
  // iterator destroyed by a later thread_local destructor then leaves its bytes alone.
  static thread_local bool gone;
  static Spares* Local() {
    if (gone) return nullptr;
    thread_local Spares spares;
    return &spares;
  }
};
thread_local bool IteratorStorage::gone = false;

class SkipList::Iterator final : public MemTableRep::Iterator {
 public:
  // `stored`: on IteratorStorage (GetIterator), not on a stack (Get).
  Iterator(const SkipList* list, bool stored) : list_(list), stored_(stored) {}
  ~Iterator() override {
    if (stored_) IteratorStorage::Give(this);
  }
  // RocksDB deletes an iterator it asked for without an arena: its storage went to
  // IteratorStorage in the destructor.
  static void operator delete(void*) {}

  bool Valid() const override { return node_ != nullptr; }
  const char* key() const override { return node_; }
  void Next() override { node_ = tend::Next(node_, 0); }
  void Prev() override { node_ = OrNull(list_->Search(node_).first); }

  void Seek(const Slice& internal_key, const char* memtable_key) override {
    node_ = ByKey(internal_key, memtable_key,
                  [this](const auto& key) { return list_->Search(key).second; });
  }

  // The last entry at or before the key: one search, its place's two sides. Asked for by the
  // interface; RocksDB 7.8's memtable iterator does its SeekForPrev with Seek, SeekToLast and
  // Prev instead, so no test reaches this.
  void SeekForPrev(const Slice& internal_key, const char* memtable_key) override {
    node_ = ByKey(internal_key, memtable_key, [this](const auto& key) {
      const auto [before, at] = list_->Search(key);
      return at != nullptr && list_->compare_(at, key) == 0 ? at : OrNull(before);
    });
  }

  void SeekToFirst() override { node_ = tend::Next(list_->head_, 0); }
  void SeekToLast() override { node_ = OrNull(list_->FindLast()); }

  const SkipList* list() const { return list_; }

 private:
  const char* OrNull(const char* node) const { return node == list_->head_ ? nullptr : node; }
  // `search` of the key RocksDB gives: the memtable's encoding of it when it has one, else the
  // internal key (the comparator takes either).
  template <typename Search>
  static const char* ByKey(const Slice& internal_key, const char* memtable_key, Search search) {
    return memtable_key != nullptr ? search(memtable_key) : search(internal_key);
  }

  const SkipList* const list_;
  const bool stored_;
  const char* node_ = nullptr;
};

MemTableRep::Iterator* SkipList::GetIterator(rocksdb::Arena* /*arena*/) {
  return new (IteratorStorage::Take(sizeof(Iterator))) Iterator(this, /*stored=*/true);
}

// A point lookup. The LookupKey's accessors are in a RocksDB header Debian does not install
// (db/dbformat.h), so the search is RocksDB's own default Get, which seeks an iterator it takes
// from GetDynamicPrefixIterator() to the key and walks it; in 7.8 that default never deletes the
// iterator (the memtables RocksDB ships override Get). So Get lends it one on its own stack: the
// first GetDynamicPrefixIterator(nullptr) of this list on this thread during the call takes it
// (taken once: anything else asking in between gets its own, as callers of
// GetDynamicPrefixIterator(nullptr) delete theirs). The default's behaviour is read from 7.8's
// db/memtable.cc, hence the version check.
static_assert(ROCKSDB_MAJOR == 7 && ROCKSDB_MINOR == 8,
              "re-read MemTableRep::Get's default (db/memtable.cc): tend lends it an iterator "
              "it must not delete");
thread_local SkipList::Iterator* lent_iterator = nullptr;

void SkipList::Get(const rocksdb::LookupKey& key, void* callback_args,
                   bool (*callback_func)(void* arg, const char* entry)) {
  Iterator iterator(this, /*stored=*/false);
  // Restored however the call ends (an exception from the callback too): no later call on this
  // thread can take an iterator whose frame is gone.
  struct Lend {
    SkipList::Iterator* const outer = lent_iterator;
    explicit Lend(SkipList::Iterator* lent) { lent_iterator = lent; }
    ~Lend() { lent_iterator = outer; }
  } lend(&iterator);
  MemTableRep::Get(key, callback_args, callback_func);
}

MemTableRep::Iterator* SkipList::GetDynamicPrefixIterator(rocksdb::Arena* arena) {
  if (arena == nullptr && lent_iterator != nullptr && lent_iterator->list() == this) {
    Iterator* lent = lent_iterator;
    lent_iterator = nullptr;
    return lent;
  }
  return GetIterator(arena);
}

class SkipListFactory final : public rocksdb::MemTableRepFactory {
 public:
  explicit SkipListFactory(const rocksdb::Comparator* family_comparator)
      : bytewise_family_(family_comparator == rocksdb::BytewiseComparator()) {}
  const char* Name() const override { return "tend.SkipList"; }
  using MemTableRepFactory::CreateMemTableRep;
  MemTableRep* CreateMemTableRep(const MemTableRep::KeyComparator& compare,
                                 rocksdb::Allocator* allocator, const rocksdb::SliceTransform*,
                                 rocksdb::Logger*) override {
    return new SkipList(compare, bytewise_family_, allocator);
  }
  // An equal entry is refused (InsertKey), not inserted twice.
  bool CanHandleDuplicatedKey() const override { return true; }

 private:
  const bool bytewise_family_;
};

}  // namespace

std::shared_ptr<rocksdb::MemTableRepFactory> NewSkipListMemTables(
    const rocksdb::Comparator* family_comparator) {
  return std::make_shared<SkipListFactory>(family_comparator);
}

SkipListsCreated SkipListsCreatedSoFar() {
  return {lists_inline.load(std::memory_order_relaxed),
          lists_rocks.load(std::memory_order_relaxed)};
}

}  // namespace tend
