#include "storage/storage.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdarg>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>

#include <google/protobuf/util/time_util.h>
#include <thread>

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file.h"
#include "base/log.h"
#include "base/printable.h"
#include "base/status.h"
#include "projections/coupons.h"
#include "projections/glucose.h"
#include "projections/marks.h"
#include "rules/memory.h"
#include "storage/rocks_status.h"
#include "storage/format.h"
#include "storage/manifest_seal.h"
#include "storage/memtable.h"

namespace tend {

namespace sf = storage_format;

namespace {
rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

rocksdb::ReadOptions ReadAt(const Storage::Snapshot* at) {
  rocksdb::ReadOptions read;
  if (at != nullptr) read.snapshot = at->get();
  return read;
}

}  // namespace

void StateBatch::EncodePatient(int32_t partition, const v1::PatientState& state,
                               const AppliedEvents& applied, std::string* key,
                               std::string* value) {
  sf::SetStateKey(partition, state.patient_id(), key);
  const size_t size = state.ByteSizeLong();
  sf::EncodePatientWith(
      static_cast<uint32_t>(size),
      [&](char* dst) {
        state.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(dst));
      },
      applied, value);
}

void StateBatch::PutPatient(int32_t partition, const v1::PatientState& state,
                            const AppliedEvents& applied) {
  EncodePatient(partition, state, applied, &key_, &value_);
  batch_.Put(storage_->state_, key_, value_);
}

void StateBatch::Reserve(size_t bytes) {
  if (batch_.Count() != 0 || bytes <= Capacity()) return;
  batch_ = rocksdb::WriteBatch(2 * std::max(bytes, Capacity()));
}

void StateBatch::PutEncodedPatient(absl::string_view key, absl::string_view value) {
  batch_.Put(storage_->state_, ToSlice(key), ToSlice(value));
}

void StateBatch::PutCommand(int32_t partition, const v1::ReminderCommand& command) {
  command.SerializeToString(&value_);
  PutCommand(partition, command.not_before().seconds(), command.command_id(), value_);
}

void StateBatch::PutCommand(int32_t partition, int64_t not_before_s, absl::string_view command_id,
                            absl::string_view value) {
  key_.clear();  // the scratch buffers: no allocation per write
  sf::AppendOutboxKey(partition, not_before_s, command_id, &key_);
  batch_.Put(storage_->outbox_, key_, ToSlice(value));
  auto [it, added] = outbox_arrivals_.try_emplace(partition, not_before_s);
  if (!added) it->second = std::min(it->second, not_before_s);
  ++outbox_puts_;
}

void StateBatch::PutDecision(const v1::Decision& decision, int64_t offset, uint32_t index) {
  decision.SerializeToString(&value_);
  PutDecision(decision.patient_id(), decision.at().seconds(), offset, index, value_);
}

void StateBatch::PutDecision(absl::string_view patient_id, int64_t at_s, int64_t offset,
                             uint32_t index, absl::string_view value) {
  key_.clear();
  sf::AppendDecisionKey(patient_id, at_s, offset, index, &key_);
  batch_.Put(storage_->decisions_, key_, ToSlice(value));
}

void StateBatch::PutTimer(int32_t partition, int64_t due_s, absl::string_view patient_id,
                          absl::string_view rule_id) {
  key_.clear();
  sf::AppendTimerKey(partition, due_s, patient_id, rule_id, &key_);
  batch_.Put(storage_->timers_, key_, "");
}

void StateBatch::DeleteTimer(int32_t partition, int64_t due_s, absl::string_view patient_id,
                             absl::string_view rule_id) {
  key_.clear();
  sf::AppendTimerKey(partition, due_s, patient_id, rule_id, &key_);
  batch_.Delete(storage_->timers_, key_);
}

void StateBatch::PutIndex(absl::string_view key) { batch_.Put(storage_->index_, ToSlice(key), ""); }

void StateBatch::DeleteIndex(absl::string_view key) {
  batch_.Delete(storage_->index_, ToSlice(key));
}

void StateBatch::DeleteAllIndexKeys() {
  // Index keys start with a BE32 partition: none is at or after eight 0xff bytes.
  batch_.DeleteRange(storage_->index_, rocksdb::Slice(), std::string(8, '\xff'));
}

void StateBatch::PutIndexParameters(absl::string_view text) {
  batch_.Put(storage_->meta_, ToSlice(sf::kIndexParametersKey), ToSlice(text));
}

void StateBatch::DeleteIndexParameters() {
  batch_.Delete(storage_->meta_, ToSlice(sf::kIndexParametersKey));
}

void StateBatch::PutCheckpoint(const v1::PartitionCheckpoint& checkpoint) {
  checkpoint.SerializeToString(&value_);
  batch_.Put(storage_->meta_, sf::CheckpointKey(checkpoint.partition()), value_);
}

void StateBatch::PutChangelogPosition(int32_t partition, int64_t next_offset,
                                      int64_t checkpoint_next) {
  v1::ChangelogPosition position;
  position.set_next_offset(next_offset);
  position.set_checkpoint_next(checkpoint_next);
  *position.mutable_written_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
  position.SerializeToString(&value_);
  batch_.Put(storage_->meta_, sf::ChangelogPositionKey(partition), value_);
}

namespace {

// `engine`: the engine's own instance (readers: false).
rocksdb::ColumnFamilyOptions CfOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                       absl::string_view name, bool engine) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Only the patient states (and the small meta family) are read by key: lookups that often miss
  // (a new patient), which whole-key bloom filters answer without touching data blocks, in the
  // tables and in the memtables. The other families are read by scans (outbox, timers' windows,
  // index, decisions) or by key only in a changelog restore; a filter there is built and
  // written for nothing, and a memtable filter is one more random write per put (docs/design.md,
  // "Filters only where keys are looked up").
  const bool looked_up = name == sf::kStateCf || name == sf::kMetaCf;
  if (looked_up) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // The engine holds the patient states' index and filter blocks in its open tables, outside the
  // block cache: in a cache shared with the memtables' reservations (WriteBufferManager) they
  // were evicted and read again on most lookups of a million patients. Their size is one entry
  // per patient: about 10 bits for the filter, one index entry per 4 KiB data block
  // (docs/design.md, "Memory"). The other families keep them in the cache: their keys grow
  // with the log (decisions are kept for ever by default), and the engine reads them by scans or
  // not at all. Readers keep them in the cache too: holding them means opening every table at
  // open, which beside a running engine races with the files its compactions delete.
  const bool hold = engine && name == sf::kStateCf;
  table.cache_index_and_filter_blocks = !hold;
  table.pin_l0_filter_and_index_blocks_in_cache = !hold;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (looked_up) {
    cf.memtable_prefix_bloom_size_ratio = 0.05;
    cf.memtable_whole_key_filtering = true;
  }
  // Level 0 is written uncompressed, every deeper level with LZ4 (the last entry serves every
  // level past it). What a flush writes is compacted again once level 0 reaches its trigger
  // (eight files in the state family, four in the others): LZ4 at the flush compressed bytes the
  // compaction then decompressed and compressed again, 7-8% of a replay's instructions
  // (docs/design.md, "Level 0 uncompressed"). Level 0 takes about twice the disk.
  cf.compression = rocksdb::kLZ4Compression;
  cf.compression_per_level = {rocksdb::kNoCompression, rocksdb::kLZ4Compression};
  // The memtables are tend's skip list (storage/memtable.h): Debian's RocksDB checks its own
  // skip list's invariants with the key comparator at every level of an insert's search, about
  // a tenth of a replay's instructions. A commit writes each family's keys in key order, and most
  // land a few entries after the previous one (the keys of earlier commits lie between: a
  // patient's last state, its earlier decisions), so an insert searches from the previous one's
  // place and climbs only as far as the entries between require (docs/design.md, "The
  // memtable's skip list"). It takes one writer at a time (DBOptions::
  // allow_concurrent_memtable_write false, below).
  cf.memtable_factory = NewSkipListMemTables(cf.comparator);  // bytewise: tend sets no other
  if (name == sf::kStateCf) {
    // Every commit rewrites its dirty patients, keys spread over the whole family, so each flush
    // overlaps all of level 1. Level 0 is compacted into level 1 once per 8 flushes instead of
    // 4 (a patient written several times among them is merged once), and level 1 holds 1 GiB
    // (a million 2-day patients, ~600 MB) instead of RocksDB's 256 MiB, so fewer bytes are
    // rewritten per commit; a miss checks up to 8 level-0 filters instead of 4. The 1M-patient
    // replay took 9-10% less CPU (docs/benchmarks.md, "The state family's compaction").
    // (Level sizes counted from level 1 up, RocksDB 7.8's default, said here: from 8.4 on
    // RocksDB sizes levels from the last one down by default, where this base means otherwise.)
    cf.level_compaction_dynamic_level_bytes = false;
    cf.level0_file_num_compaction_trigger = 8;
    cf.max_bytes_for_level_base = uint64_t{1} << 30;
  }
  return cf;
}

// Drops decisions recorded before now - `keep` as they are compacted (the key holds the
// decision's time: storage/format.h `decisions`). Wall-clock: decisions are Explain's records,
// never read by the fold, so what a replay decides is unaffected.
class DecisionRetention final : public rocksdb::CompactionFilter {
 public:
  explicit DecisionRetention(absl::Duration keep) : keep_(keep) {}
  bool Filter(int /*level*/, const rocksdb::Slice& key, const rocksdb::Slice& /*value*/,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    int64_t at_s;
    if (!sf::ParseDecisionKeyTime(absl::string_view(key.data(), key.size()), &at_s)) {
      return false;  // not ours
    }
    return at_s < absl::ToUnixSeconds(absl::Now() - keep_);
  }
  const char* Name() const override { return "tend.DecisionRetention"; }

 private:
  const absl::Duration keep_;
};

}  // namespace

// RocksDB's own messages (warnings and errors) go to tend's log, not to a LOG file in the state
// directory: on a full disk that file's failed write made RocksDB abort at its next message
// (an assertion in Debian's build), and an operator reads one log, not two.
class TendRocksLogger final : public rocksdb::Logger {
 public:
  TendRocksLogger() : rocksdb::Logger(rocksdb::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::WARN_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char text[1024];
    std::vsnprintf(text, sizeof(text), format, ap);
    if (level >= rocksdb::ERROR_LEVEL) {
      TEND_LOG_ERROR("rocksdb: %s", text);
    } else {
      TEND_LOG_WARN("rocksdb: %s", text);
    }
  }
};

// Keeps the MANIFEST seal (storage/manifest_seal.h) up to date while the engine runs: RocksDB
// calls these after it has synced the flush's or compaction's MANIFEST record, and GetLiveFiles
// reports the MANIFEST's size as of its last synced record.
// Times RocksDB's write stalls: from the first column family whose writes are delayed (or
// stopped) until none is. OnStallConditionsChanged runs on RocksDB's threads, holding its mutex:
// a few arithmetic operations under our own lock.
class Storage::StallClock final : public rocksdb::EventListener {
 public:
  void OnStallConditionsChanged(const rocksdb::WriteStallInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    Move(info.condition.prev, -1, now);
    Move(info.condition.cur, +1, now);
  }
  // The time spent delayed and stopped so far, the current stretch included.
  std::pair<absl::Duration, absl::Duration> Read() const {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    auto total = [&](const Condition& c) {
      return absl::FromChrono(c.spent + (c.column_families > 0 ? now - c.since
                                                                 : Clock::duration::zero()));
    };
    return {total(delayed_), total(stopped_)};
  }

 private:
  using Clock = std::chrono::steady_clock;  // durations: immune to clock steps
  struct Condition {
    int column_families = 0;  // in this condition now
    Clock::time_point since;  // when the first of them entered it
    Clock::duration spent{};  // over the stretches that ended
  };
  void Move(rocksdb::WriteStallCondition condition, int by, Clock::time_point now) {
    Condition* c = condition == rocksdb::WriteStallCondition::kDelayed   ? &delayed_
                   : condition == rocksdb::WriteStallCondition::kStopped ? &stopped_
                                                                         : nullptr;
    if (c == nullptr) return;
    if (by > 0 && c->column_families++ == 0) c->since = now;
    if (by < 0 && c->column_families > 0 && --c->column_families == 0) c->spent += now - c->since;
  }
  mutable std::mutex mu_;
  Condition delayed_, stopped_;
};

class Storage::SealKeeper final : public rocksdb::EventListener {
 public:
  explicit SealKeeper(std::string dir) : dir_(std::move(dir)) {}
  // On RocksDB's flush and compaction threads: a seal (two fsyncs) at most every 5 s, so that a
  // burst of flushes is not held up by them (the seal may lag the MANIFEST by that much; it
  // never leads it, and the close writes the final one).
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { SealSoon(); }
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override {
    SealSoon();
  }
  void SealSoon() {
    const int64_t now = absl::ToUnixNanos(absl::Now());
    int64_t last = last_seal_ns_.load();
    if (now - last < absl::ToInt64Nanoseconds(absl::Seconds(5)) ||
        !last_seal_ns_.compare_exchange_strong(last, now)) {
      return;
    }
    (void)Seal();
  }

  // Starts (db) or stops (nullptr) keeping the seal.
  void Attach(rocksdb::DB* db) {
    std::lock_guard<std::mutex> lock(mu_);
    db_ = db;
  }
  absl::Status Seal() {
    std::lock_guard<std::mutex> lock(mu_);
    if (db_ == nullptr) return absl::OkStatus();
    std::vector<std::string> files;
    uint64_t manifest_bytes = 0;
    rocksdb::Status s = db_->GetLiveFiles(files, &manifest_bytes, /*flush_memtable=*/false);
    absl::Status status = FromRocks(s, "listing the live files");
    if (status.ok()) {
      status = absl::InternalError("RocksDB listed no MANIFEST among the live files");
      for (const std::string& f : files) {
        if (absl::StartsWith(f, "/MANIFEST-")) {
          status = WriteManifestSeal(dir_, f.substr(1), manifest_bytes);
          break;
        }
      }
    }
    if (!status.ok()) {
      TEND_LOG_WARN("MANIFEST seal not updated: %s", status.ToString().c_str());
    }
    return status;
  }

 private:
  const std::string dir_;
  std::atomic<int64_t> last_seal_ns_{0};
  std::mutex mu_;
  rocksdb::DB* db_ = nullptr;  // guarded by mu_
};

Storage::~Storage() {
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  if (seal_keeper_) seal_keeper_->Attach(nullptr);
  const rocksdb::Status closed = db_ ? db_->Close() : rocksdb::Status::OK();
  // Closed cleanly: the MANIFEST is whole, synced and final, and the seal records its full
  // length. After an error (a full disk) its tail may not be synced: the last seal stands.
  if (seal_keeper_ && db_ && closed.ok()) {
    absl::Status s = SealCurrentManifest(dir_);
    if (!s.ok()) TEND_LOG_WARN("MANIFEST seal not written at close: %s", s.ToString().c_str());
  }
}

// Read from /proc/locks rather than probed on the LOCK file: F_GETLK does not show a lock this
// process holds, and closing any descriptor of the file would release this process's locks on
// it, an engine's own among them (POSIX record locks; fcntl(2)). Where /proc/locks cannot be
// read, the probe on the file, which sees other processes only.
bool WriterHoldsStateDirectory(const std::string& dir) {
  const std::string lock = dir + "/LOCK";
  struct stat st = {};
  if (::stat(lock.c_str(), &st) != 0) return false;
  std::ifstream locks("/proc/locks");
  if (locks) {
    // A line per lock: "1: POSIX  ADVISORY  WRITE 7143 fd:01:1234567 0 EOF" (a waiter's has
    // "->" after the id); the file is the device's major:minor in hex and the inode. Matched on
    // the inode alone: on an overlay filesystem (a container's) the lock names the underlying
    // device, which stat does not give. Another file's write lock with the same inode number on
    // another device would only make a reader open as a secondary.
    const std::string inode = absl::StrCat(static_cast<unsigned long long>(st.st_ino));
    for (std::string line; std::getline(locks, line);) {
      const std::vector<absl::string_view> fields =
          absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (fields.size() > 5 && fields[1] == "POSIX" && fields[3] == "WRITE" &&
          fields[5].substr(fields[5].rfind(':') + 1) == inode) {
        return true;
      }
    }
    return false;
  }
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock probe = {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

namespace {

constexpr char kDamagedWhatToDo[] =
    "Restore it from a backup, or rebuild it from the log into a new directory (tend replay "
    "--to NEW_DIR, then tend replay --swap)";

// RocksDB's open failing on files that disagree with the MANIFEST (missing, cut short, altered,
// or a MANIFEST that no longer knows what the directory held).
bool IsDamage(const rocksdb::Status& s) {
  return s.IsCorruption() || s.IsPathNotFound() ||
         (s.IsIOError() && s.ToString().find("No such file") != std::string::npos);
}

// The mark of an unlogged directory not yet finished (StorageOptions::unlogged), format 1: the
// file `tend-unfinished` in the state directory, ASCII "tend-unfinished 1\n" and a line saying
// what it is. Its presence is what counts; its content is for whoever lists the directory.
constexpr char kUnfinishedFile[] = "tend-unfinished";

absl::Status WriteUnfinishedMark(const std::string& dir) {
  const std::string path = dir + "/" + kUnfinishedFile;
  std::ofstream out(path, std::ios::trunc);
  out << "tend-unfinished 1\n"
      << "a rebuild written without the WAL, not finished: every open refuses this directory; "
         "remove the whole directory, not this file\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("writing ", path));
  TEND_RETURN_IF_ERROR(SyncPath(path));
  return SyncPath(dir);
}

// A directory without the seal file is one no seal-aware engine has opened yet, unless its meta
// family says an engine sealed it: then the seal was deleted or left out of a copy, and its
// MANIFEST can no longer be checked. Looked up by a read-only instance of the meta family only,
// before a writer's open could rewrite the MANIFEST and delete tables it no longer lists.
absl::Status RefuseLostSeal(const std::string& dir, const rocksdb::DBOptions& db_options) {
  std::vector<std::string> existing;
  if (!rocksdb::DB::ListColumnFamilies(db_options, dir, &existing).ok() ||
      std::find(existing.begin(), existing.end(), sf::kMetaCf) == existing.end()) {
    return absl::OkStatus();  // being created (or unreadable): the open that follows says which
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {std::string(sf::kMetaCf), rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(db_options, dir, cfs, &handles, &raw);
  if (IsDamage(s)) {
    return absl::DataLossError(absl::StrCat("state directory ", dir, " is damaged: ",
                                            s.ToString(), ". ", kDamagedWhatToDo));
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening state directory ", dir));
  std::string value;
  const rocksdb::Status got =
      raw->Get(rocksdb::ReadOptions(), handles[1], ToSlice(sf::kManifestSealedKey), &value);
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
  if (got.ok()) {
    return absl::DataLossError(absl::StrCat(
        "state directory ", dir, " is damaged: its MANIFEST seal ", kManifestSealFile,
        " is missing, though an engine sealed this directory (deleted, or left out of a backup "
        "or copy?), so its MANIFEST cannot be checked. ", kDamagedWhatToDo,
        "; a whole backup carries the seal"));
  }
  if (!got.IsNotFound()) return FromRocks(got, "reading manifest_sealed");
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(const std::string& dir,
                                                       const StorageOptions& options) {
  return OpenImpl(dir, nullptr, options);
}

absl::StatusOr<std::unique_ptr<Storage>> Storage::OpenReader(const std::string& dir,
                                                             const std::string& scratch_dir) {
  StorageOptions options;
  options.create_if_missing = false;
  options.block_cache_bytes = 64 << 20;
  const bool engine_before = WriterHoldsStateDirectory(dir);
  auto storage = OpenImpl(dir, &scratch_dir, options);
  // An engine may start between the look at the LOCK (none: a stopped directory, opened
  // read-only) and the open, and then compact away files the reader's MANIFEST lists: a missing
  // file is then an engine now running. Look again, as a secondary instance beside it; only for
  // a missing file (a corrupt one is damage whoever runs), and only if that engine stays: an
  // engine refusing the same damaged directory holds the lock only while its own open fails.
  const absl::string_view why = storage.status().message();
  if (engine_before || !absl::IsDataLoss(storage.status()) ||
      !(absl::StrContains(why, "is missing") || absl::StrContains(why, "No such file")) ||
      !WriterHoldsStateDirectory(dir)) {
    return storage;
  }
  const absl::Status first = storage.status();
  storage = OpenImpl(dir, &scratch_dir, options);
  if (storage.ok()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!WriterHoldsStateDirectory(dir)) return first;
  }
  return storage;
}

absl::StatusOr<std::unique_ptr<Storage>> Storage::OpenImpl(const std::string& dir,
                                                           const std::string* scratch_dir,
                                                           const StorageOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(dir) / kUnfinishedFile, ec)) {
    if (WriterHoldsStateDirectory(dir)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state directory ", dir, " is being rebuilt by a running `tend replay` (it is marked ",
          kUnfinishedFile, " until the rebuild is complete); wait for it to finish"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory ", dir, " is an unfinished rebuild: `tend replay` stopped before its end "
        "(it is marked ", kUnfinishedFile, "), and its commits skipped the WAL, so it holds an "
        "incomplete state, possibly not even a consistent one. Remove the whole directory (rm -r ",
        dir, ") and run the replay again"));
  }
  const bool fresh = !std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec);
  if (options.unlogged && (!fresh || scratch_dir != nullptr)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory ", dir, ": only a new directory is written without the WAL"));
  }
  if (fresh) {
    // No CURRENT: a new directory, unless tables or tend's seal are there (RocksDB would create
    // a new database beside them and delete the old tables at its open). A MANIFEST alone is a
    // crash while RocksDB created the directory, which it redoes.
    for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = f.path().filename().string();
      if (f.path().extension() == ".sst" || name == kManifestSealFile) {
        return absl::DataLossError(absl::StrCat(
            "state directory ", dir, " is damaged: its CURRENT file is missing, but ", name,
            " is there. ", kDamagedWhatToDo));
      }
    }
  }
  if (fresh && (scratch_dir != nullptr || !options.create_if_missing)) {
    return absl::NotFoundError(absl::StrCat(
        "no tend state directory at ", dir, " (run `tend engine --db ", dir, "` first)"));
  }
  if (fresh) std::filesystem::create_directories(dir, ec);  // else RocksDB logs its absence
  // Marked before anything is written: from here until FinishUnlogged, an open refuses it.
  if (options.unlogged) TEND_RETURN_IF_ERROR(WriteUnfinishedMark(dir));
  // A MANIFEST shorter than tend last saw it opens silently as an older state: refuse it first.
  if (!fresh) TEND_RETURN_IF_ERROR(CheckManifestSeal(dir, kDamagedWhatToDo));
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.write_buffer_budget_bytes, cache);
  // A WAL file goes only once every family with data in it has flushed. The state family
  // flushes on its own every 64 MiB, the small families (meta's checkpoints, a live engine's
  // few decisions and timers) almost never, so without a bound the WAL grows to RocksDB's
  // default of four times all families' write buffers (3.5 GiB here) before they are flushed:
  // that much to replay at an open after a crash, and as much disk or page cache (at a live
  // engine's cadence it was most of the kernel's time: docs/design.md, "The WAL's bound").
  db_options.max_total_wal_size = options.wal_budget_bytes;
  db_options.IncreaseParallelism(2);
  // tend's memtables take one writer at a time (CfOptions). A write group is inserted by its
  // leader alone: the engine's commit is most of every group.
  db_options.allow_concurrent_memtable_write = false;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.info_log = std::make_shared<TendRocksLogger>();
  // Damage is loud: the MANIFEST tracks every synced WAL and its size, so a MANIFEST cut back to
  // an older version (whose WALs were deleted since) or a missing WAL stops the open instead of
  // silently presenting what is left; every SST file is opened and checked against the MANIFEST
  // (max_open_files -1: the default, and what secondaries need).
  db_options.track_and_verify_wals_in_manifest = true;
  db_options.paranoid_checks = true;
  // A WAL whose records fail their checksums before its end is damage: the open refuses it
  // (kCorruption). RocksDB's default, point-in-time recovery, stops the replay at the first bad
  // record and drops the rest with a warning, and the directory opened as an older state: a byte
  // flipped in the middle of a WAL holding a fold's commits gave dump, explain and report 79 of
  // 200 patients, exit 0. What a crash leaves still opens: a last record cut short (a process
  // killed during a write) and zeroed bytes after it, which this mode tolerates at the tail.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.max_open_files = -1;
  // Beside a running engine the look is the engine's (it checked at its open; a read-only
  // instance there could race its compactions).
  if (!fresh && !std::filesystem::exists(std::filesystem::path(dir) / kManifestSealFile, ec) &&
      (scratch_dir == nullptr || !WriterHoldsStateDirectory(dir))) {
    TEND_RETURN_IF_ERROR(RefuseLostSeal(dir, db_options));
  }

  auto storage = std::unique_ptr<Storage>(new Storage());
  storage->dir_ = dir;
  storage->unlogged_ = options.unlogged;
  if (scratch_dir == nullptr) {
    storage->seal_keeper_ = std::make_shared<SealKeeper>(dir);
    db_options.listeners.push_back(storage->seal_keeper_);
    storage->stall_clock_ = std::make_shared<StallClock>();
    db_options.listeners.push_back(storage->stall_clock_);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  const bool engine = scratch_dir == nullptr;
  cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, CfOptions(cache, "", engine));
  for (absl::string_view name : sf::kColumnFamilies) {
    cfs.emplace_back(std::string(name), CfOptions(cache, name, engine));
    if (name == sf::kDecisionsCf && scratch_dir == nullptr &&
        options.decisions_retention > absl::ZeroDuration()) {
      storage->decisions_filter_ = std::make_unique<DecisionRetention>(options.decisions_retention);
      cfs.back().options.compaction_filter = storage->decisions_filter_.get();
      // Files no other write touches are rewritten daily, so old decisions go even then.
      cfs.back().options.periodic_compaction_seconds = 86400;
    }
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  bool secondary = false;
  if (scratch_dir != nullptr) {
    std::vector<std::string> existing;
    s = rocksdb::DB::ListColumnFamilies(db_options, dir, &existing);
    if (s.ok() && existing.size() < cfs.size()) {
      bool has_tables = false;
      for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
        has_tables |= f.path().extension() == ".sst";
      }
      if (has_tables) {  // not new: its MANIFEST has lost column families
        return absl::DataLossError(absl::StrCat(
            "state directory ", dir, " is damaged: its MANIFEST lists ", existing.size(), " of ",
            cfs.size(), " column families. ", kDamagedWhatToDo));
      }
      return absl::UnavailableError(absl::StrCat(
          "state directory ", dir, " is still being created by its engine; try again"));
    }
    secondary = WriterHoldsStateDirectory(dir);
    if (secondary) {
      // Beside a running engine: a secondary instance, which tolerates files the engine
      // compacts away while it opens (and so also missing ones: the engine checked at its open).
      s = rocksdb::DB::OpenAsSecondary(
          rocksdb::Options(db_options, rocksdb::ColumnFamilyOptions()), dir, *scratch_dir, cfs,
          &storage->handles_, &raw);
    } else {
      // A stopped directory: a read-only instance, which refuses missing files like the engine.
      s = rocksdb::DB::OpenForReadOnly(db_options, dir, cfs, &storage->handles_, &raw);
    }
    storage->read_only_ = true;
  } else {
    s = rocksdb::DB::Open(db_options, dir, cfs, &storage->handles_, &raw);
  }
  if (IsDamage(s)) {
    // Files and MANIFEST disagree: a file missing, cut short or altered, or a MANIFEST that no
    // longer knows what the directory held. Never open what is left as if it were the state.
    return absl::DataLossError(
        absl::StrCat("state directory ", dir, " is damaged: ", s.ToString(), ". ",
                     kDamagedWhatToDo));
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening state directory ", dir));
  storage->db_.reset(raw);
  storage->meta_ = storage->handles_[1];
  storage->state_ = storage->handles_[2];
  storage->outbox_ = storage->handles_[3];
  storage->decisions_ = storage->handles_[4];
  storage->timers_ = storage->handles_[5];
  storage->index_ = storage->handles_[6];
  // Beside a running engine (a secondary instance) files vanish as the engine compacts, and the
  // engine checked them at its own open: only a writer and a reader of a stopped directory look.
  if (!secondary) TEND_RETURN_IF_ERROR(storage->VerifyFiles(dir));
  if (storage->seal_keeper_) {
    storage->seal_keeper_->Attach(raw);
    TEND_RETURN_IF_ERROR(storage->seal_keeper_->Seal());
  }
  TEND_RETURN_IF_ERROR(storage->CheckFormatVersion(fresh));
  if (storage->seal_keeper_) {
    TEND_RETURN_IF_ERROR(storage->MarkSealed());
    // The outbox's size for metrics, kept from here by commits and removals: its keys once,
    // values not read (an outbox is what the sink has not acknowledged yet: small, unless the
    // sink was away for long).
    int64_t commands = 0;
    std::unique_ptr<rocksdb::Iterator> it(
        storage->db_->NewIterator(rocksdb::ReadOptions(), storage->outbox_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++commands;
    TEND_RETURN_IF_ERROR(FromRocks(it->status(), "counting the outbox"));
    storage->outbox_commands_.store(commands);
  }
  return storage;
}

absl::Status Storage::MarkSealed() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kManifestSealedKey), &value);
  if (s.ok()) return absl::OkStatus();
  if (!s.IsNotFound()) return FromRocks(s, "reading manifest_sealed");
  return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kManifestSealedKey), "1"),
                   "writing manifest_sealed");
}

absl::Status Storage::VerifyFiles(const std::string& dir) const {
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  for (const rocksdb::LiveFileMetaData& f : files) {
    const std::string path = f.db_path + f.name;
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) {
      return absl::DataLossError(absl::StrCat("state directory ", dir, " is damaged: ", f.name,
                                              ", which its MANIFEST lists, is missing (",
                                              ec.message(), "). ", kDamagedWhatToDo));
    }
    if (size != f.size) {
      return absl::DataLossError(absl::StrCat(
          "state directory ", dir, " is damaged: ", f.name, " is ", size,
          " bytes, its MANIFEST says ", f.size, " (cut short or replaced). ", kDamagedWhatToDo));
    }
  }
  return absl::OkStatus();
}

absl::Status Storage::CheckFormatVersion(bool fresh) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kFormatVersionKey), &value);
  if (s.IsNotFound()) {
    if (read_only_) return absl::OkStatus();  // an engine that never committed yet
    if (!fresh) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state directory has no format_version: not a tend state directory, or one whose "
          "MANIFEST is damaged. ", kDamagedWhatToDo));
    }
    return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kFormatVersionKey),
                              std::to_string(sf::kStorageFormatVersion)),
                     "writing format_version");
  }
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading format_version"));
  int version = 0;
  const bool upgradable =
      absl::SimpleAtoi(value, &version) && version >= 4 && version < sf::kStorageFormatVersion;
  if (upgradable && !read_only_) return UpgradeFormat(version);
  // A 6 differs from a 10 only in what its records hold, which ParsePatient reads as it is: a
  // reader need not wait for the upgrade.
  if (upgradable && version >= 6) return absl::OkStatus();
  if (upgradable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory has storage format version ", version, ": start the engine on it once "
        "(tend engine) to upgrade it to ", sf::kStorageFormatVersion, ", or rebuild it from the log"));
  }
  if (!absl::SimpleAtoi(value, &version) || version != sf::kStorageFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory has storage format version ", value, ", this tend reads version ",
        sf::kStorageFormatVersion, "; rebuild it from the log into a new directory"));
  }
  return absl::OkStatus();
}

// 4 -> 5 changed only the `index` column family, which the engine rebuilds from the states when
// index_parameters (new in 5) is missing (index/patient_index.h RebuildPatientIndexIfStale). 5 -> 6 put
// not_before into the outbox keys: the outbox (commands not yet acknowledged, a small column
// family) is rewritten here, with the new version, in one write. 6 -> 7 bounded the patient
// records' dedupe sets and gave them fold hours: a 6 record is read as it is (storage/format.h
// DecodePatient) and written as a 7 when its patient is next folded, so only the version changes.
// 7 -> 8 put the glucose readings in columns, 8 -> 9 the rule memories, 9 -> 10 the event marks'
// fingerprints, 10 -> 11 the coupons: the same, ParsePatient moving them. 11 -> 12 made a
// patient's timers one alarm key: an 11's keys of one rule each are fired as alarms (the engine's
// FireTimers), so only the version changes.
absl::Status Storage::UpgradeFormat(int from_version) {
  StateBatch batch(this);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  int64_t moved = 0;
  for (it->SeekToFirst(); from_version <= 5 && it->Valid(); it->Next()) {
    v1::ReminderCommand cmd;
    if (it->key().size() < 4 ||
        !cmd.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("corrupt outbox record ", it->key().ToString(true),
                                              " in a version ", from_version, " state directory"));
    }
    const auto partition = static_cast<int32_t>(
        sf::ReadBe32(absl::string_view(it->key().data(), it->key().size())));
    batch.batch_.Delete(outbox_, it->key());
    batch.batch_.Put(outbox_, sf::OutboxKey(partition, cmd.not_before().seconds(),
                                            cmd.command_id()),
                     it->value());
    ++moved;
  }
  TEND_RETURN_IF_ERROR(FromRocks(it->status(), "reading the outbox to upgrade it"));
  batch.batch_.Put(meta_, ToSlice(sf::kFormatVersionKey), std::to_string(sf::kStorageFormatVersion));
  TEND_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &batch.batch_),
                                 absl::StrCat("upgrading format_version ", from_version, " to ",
                                              sf::kStorageFormatVersion)));
  TEND_LOG_INFO("storage format upgraded from version %d to %d (%d outbox commands rekeyed)",
                from_version, sf::kStorageFormatVersion, moved);
  return absl::OkStatus();
}

absl::Status Storage::CompactDecisions() {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return FromRocks(db_->CompactRange(o, decisions_, nullptr, nullptr), "compacting decisions");
}

absl::Status Storage::Flush() {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  rocksdb::FlushOptions o;
  o.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> all(handles_.begin(), handles_.end());
  return FromRocks(db_->Flush(o, all), "flushing the state");
}

absl::Status Storage::FinishUnlogged() {
  if (!unlogged_.exchange(false)) {
    return absl::FailedPreconditionError("the state directory is not unlogged");
  }
  // Tables first (the flush syncs them and the MANIFEST), then the mark goes: a crash between
  // the two leaves a whole directory refused, never a partial one accepted.
  TEND_RETURN_IF_ERROR(Flush());
  const std::string path = dir_ + "/" + kUnfinishedFile;
  if (::unlink(path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("removing ", path, ": ", std::strerror(errno)));
  }
  return SyncPath(dir_);
}

absl::Status Storage::BindTopic(absl::string_view topic) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kTopicKey), &value);
  if (s.IsNotFound()) {
    if (read_only_) return absl::OkStatus();
    return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kTopicKey), ToSlice(topic)),
                     "writing topic");
  }
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading topic"));
  if (value != topic) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory was folded from topic \"", value, "\", not \"", topic,
        "\"; use a new --db directory for another topic"));
  }
  return absl::OkStatus();
}

absl::Status Storage::MarkFoldedUntil(absl::Time until) {
  const std::string value = std::to_string(absl::ToUnixMillis(until));
  return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kFoldedUntilKey),
                            ToSlice(value)),
                   "writing folded_until");
}

absl::StatusOr<std::optional<absl::Time>> Storage::FoldedUntil() const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kFoldedUntilKey), &value);
  if (s.IsNotFound()) return std::nullopt;
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading folded_until"));
  int64_t ms = 0;
  if (!absl::SimpleAtoi(value, &ms)) {
    return absl::DataLossError(absl::StrCat("state directory ", dir_, ": its folded_until, \"",
                                            Bounded(value, 64), "\", is not a time (damaged?)"));
  }
  return absl::FromUnixMillis(ms);
}

absl::Status Storage::BindTopicPartitions(absl::string_view topic, int partitions) {
  auto refused = [&](const std::string& folded_with) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory ", dir_, " was folded from ", topic, " with ", folded_with,
        "; the topic has ", partitions, " partitions now. A patient's partition is its key's "
        "hash modulo the count, so under another count its events land in another partition "
        "and its state would split in two: fold the topic into a new directory (tend replay "
        "--to NEW_DIR, then --swap) and run the engine on that"));
  };
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kTopicPartitionsKey), &value);
  if (!s.IsNotFound()) {
    TEND_RETURN_IF_ERROR(FromRocks(s, "reading the topic's partition count"));
    int stored = 0;
    if (!absl::SimpleAtoi(value, &stored) || stored <= 0) {
      return absl::DataLossError(absl::StrCat("state directory ", dir_, " is damaged: its ",
                                              sf::kTopicPartitionsKey, " is not a count. ",
                                              kDamagedWhatToDo));
    }
    if (stored != partitions) return refused(absl::StrCat(stored, " partitions"));
    return absl::OkStatus();
  }
  // Not recorded yet: the checkpoints say at least how many partitions there were.
  TEND_ASSIGN_OR_RETURN(const std::vector<v1::PartitionCheckpoint> checkpoints,
                        LoadCheckpoints());
  for (const v1::PartitionCheckpoint& cp : checkpoints) {
    if (cp.partition() >= partitions) {
      return refused(absl::StrCat("at least ", cp.partition() + 1, " partitions (it has a "
                                  "checkpoint of partition ", cp.partition(), ")"));
    }
  }
  if (read_only_) return absl::OkStatus();
  return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kTopicPartitionsKey),
                            absl::StrCat(partitions)),
                   "writing the topic's partition count");
}

absl::Status Storage::BindProjectionVersions(
    const std::map<std::string, int>& versions,
    const std::map<std::string, std::string>& fold_parameters) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kProjectionVersionsKey), &value);
  if (!s.IsNotFound() || read_only_) return CheckProjectionVersions(versions, fold_parameters);
  v1::ProjectionVersions stored;
  for (const auto& [name, version] : versions) (*stored.mutable_versions())[name] = version;
  for (const auto& [key, v] : fold_parameters) (*stored.mutable_fold_parameters())[key] = v;
  return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kProjectionVersionsKey),
                            stored.SerializeAsString()),
                   "writing projection versions");
}

absl::Status Storage::CheckProjectionVersions(
    const std::map<std::string, int>& versions,
    const std::map<std::string, std::string>& fold_parameters) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kProjectionVersionsKey), &value);
  if (s.IsNotFound()) return absl::OkStatus();
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading projection versions"));
  v1::ProjectionVersions stored;
  if (!stored.ParseFromString(value)) return absl::DataLossError("corrupt projection versions");
  const std::map<std::string, int> have(stored.versions().begin(), stored.versions().end());
  if (have != versions) {
    std::string diff;
    for (const auto& [name, version] : versions) {
      auto it = have.find(name);
      int old = it == have.end() ? 0 : it->second;
      if (old != version) {
        absl::StrAppend(&diff, diff.empty() ? "" : ", ", name, " ", old, " -> ", version);
      }
    }
    for (const auto& [name, version] : have) {
      if (!versions.count(name)) absl::StrAppend(&diff, diff.empty() ? "" : ", ", name, " removed");
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the state was folded by other projection versions (", diff,
        "); rebuild it from the log into a new --db directory"));
  }
  const std::map<std::string, std::string> had(stored.fold_parameters().begin(),
                                               stored.fold_parameters().end());
  for (const auto& [key, v] : fold_parameters) {
    auto it = had.find(key);
    if (it != had.end() && it->second != v) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state was folded with ", key, " = \"", it->second, "\" but the config says \"", v,
          "\"; use the config the state was folded with, or rebuild from the log into a new --db "
          "directory"));
    }
  }
  return absl::OkStatus();
}

absl::Status Storage::PutEngineConfig(absl::string_view yaml) {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  return FromRocks(db_->Put(rocksdb::WriteOptions(), meta_, ToSlice(sf::kEngineConfigKey),
                            ToSlice(yaml)),
                   "writing the engine config");
}

absl::StatusOr<std::optional<std::string>> Storage::GetEngineConfig() const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kEngineConfigKey), &value);
  if (s.IsNotFound()) return std::nullopt;
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading the engine config"));
  return value;
}

absl::StatusOr<std::vector<v1::PartitionCheckpoint>> Storage::LoadCheckpoints(
    const Snapshot* at) const {
  std::vector<v1::PartitionCheckpoint> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ReadAt(at), meta_));
  for (it->Seek(ToSlice(sf::kCheckpointPrefix));
       it->Valid() && it->key().starts_with(ToSlice(sf::kCheckpointPrefix));
       it->Next()) {
    v1::PartitionCheckpoint cp;
    if (!cp.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("corrupt checkpoint record ", it->key().ToString(true)));
    }
    out.push_back(std::move(cp));
  }
  TEND_RETURN_IF_ERROR(FromRocks(it->status(), "reading checkpoints"));
  return out;
}

absl::StatusOr<std::optional<v1::PartitionCheckpoint>> Storage::LoadCheckpoint(
    int32_t partition) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, sf::CheckpointKey(partition), &value);
  if (s.IsNotFound()) return std::nullopt;
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading checkpoint"));
  v1::PartitionCheckpoint cp;
  if (!cp.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("corrupt checkpoint of partition ", partition));
  }
  return cp;
}

namespace {

absl::Status ParsePatient(absl::string_view record, absl::string_view what, v1::PatientState* state,
                          AppliedEvents* applied) {
  absl::string_view state_bytes;
  if (!sf::DecodePatient(record, &state_bytes, applied) ||
      !state->ParseFromArray(state_bytes.data(), static_cast<int>(state_bytes.size())) ||
      // Format 7 readings into format 8's columns, format 8 rule memories into format 9's,
      // format 9 event marks into format 10's, format 10 coupons into format 11's columns
      // (storage/format.h); all checked.
      (state->has_glucose() && !projections::UpgradeGlucose(state->mutable_glucose())) ||
      (state->has_rules() && !UpgradeRuleMemories(state->mutable_rules())) ||
      !projections::UpgradeEventMarks(state) ||
      (state->has_coupons() && !projections::UpgradeCoupons(state->mutable_coupons()))) {
    return absl::DataLossError(absl::StrCat("corrupt patient record ", what));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> Storage::GetPatient(int32_t partition, absl::string_view patient_id,
                                         v1::PatientState* state,
                                         AppliedEvents* applied, const Snapshot* at,
                                         size_t* stored_bytes) const {
  if (stored_bytes != nullptr) *stored_bytes = 0;
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(ReadAt(at), state_, sf::StateKey(partition, patient_id),
                               &value);
  if (s.IsNotFound()) {
    if (applied != nullptr) applied->clear();
    return false;
  }
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading patient state"));
  if (stored_bytes != nullptr) *stored_bytes = value.size();
  TEND_RETURN_IF_ERROR(ParsePatient(absl::string_view(value.data(), value.size()),
                                    absl::StrCat("of patient ", patient_id), state, applied));
  return true;
}

absl::StatusOr<std::optional<v1::PatientState>> Storage::FindPatient(
    absl::string_view patient_id) const {
  TEND_ASSIGN_OR_RETURN(auto checkpoints, LoadCheckpoints());
  for (const auto& cp : checkpoints) {
    v1::PatientState state;
    TEND_ASSIGN_OR_RETURN(bool found, GetPatient(cp.partition(), patient_id, &state));
    if (found) return state;
  }
  return std::nullopt;
}

namespace {

absl::StatusOr<int32_t> ParseOutboxEntry(const rocksdb::Iterator& it, v1::ReminderCommand* cmd) {
  int32_t partition;
  int64_t not_before_s;
  if (!sf::ParseOutboxKey(absl::string_view(it.key().data(), it.key().size()), &partition,
                          &not_before_s) ||
      !cmd->ParseFromArray(it.value().data(), static_cast<int>(it.value().size()))) {
    return absl::DataLossError(absl::StrCat("corrupt outbox record ", it.key().ToString(true)));
  }
  return partition;
}

}  // namespace

absl::Status Storage::ForEachCommand(
    const std::function<absl::Status(int32_t, const v1::ReminderCommand&)>& fn) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    v1::ReminderCommand cmd;
    TEND_ASSIGN_OR_RETURN(const int32_t partition, ParseOutboxEntry(*it, &cmd));
    TEND_RETURN_IF_ERROR(fn(partition, cmd));
  }
  return FromRocks(it->status(), "reading the outbox");
}

absl::StatusOr<int64_t> Storage::CountCommands() const {
  int64_t n = 0;
  TEND_RETURN_IF_ERROR(ForEachCommand([&](int32_t, const v1::ReminderCommand&) {
    ++n;
    return absl::OkStatus();
  }));
  return n;
}

absl::Status Storage::OutboxHeads(OutboxArrivals* heads) const {
  heads->clear();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  for (it->SeekToFirst(); it->Valid();) {
    int32_t partition;
    int64_t not_before_s;
    if (!sf::ParseOutboxKey(absl::string_view(it->key().data(), it->key().size()), &partition,
                            &not_before_s)) {
      return absl::DataLossError(absl::StrCat("corrupt outbox key ", it->key().ToString(true)));
    }
    (*heads)[partition] = not_before_s;
    if (static_cast<uint32_t>(partition) == std::numeric_limits<uint32_t>::max()) break;
    std::string next;
    sf::AppendBe32(static_cast<uint32_t>(partition) + 1, &next);
    it->Seek(ToSlice(next));
  }
  return FromRocks(it->status(), "reading the outbox");
}

absl::Status Storage::ForEachDueCommand(
    int32_t partition, int64_t from_s, int64_t until_s, size_t limit,
    const std::function<absl::Status(const v1::ReminderCommand&)>& fn) const {
  if (until_s < from_s || limit == 0) return absl::OkStatus();
  const std::string start = sf::OutboxFrom(partition, from_s);
  const std::string end = sf::OutboxFrom(partition, until_s + 1);
  const rocksdb::Slice upper = ToSlice(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, outbox_));
  size_t n = 0;
  for (it->Seek(ToSlice(start)); it->Valid() && n < limit; it->Next(), ++n) {
    v1::ReminderCommand cmd;
    TEND_RETURN_IF_ERROR(ParseOutboxEntry(*it, &cmd).status());
    TEND_RETURN_IF_ERROR(fn(cmd));
  }
  return FromRocks(it->status(), "reading the outbox");
}

absl::Status Storage::RemoveCommands(const std::vector<OutboxRemoval>& removals) {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  if (removals.empty()) return absl::OkStatus();
  StateBatch batch(this);
  for (const OutboxRemoval& r : removals) {
    const v1::ReminderCommand& c = *r.command;
    if (r.dropped != nullptr) {
      // A hash of the command id keeps two drops of one patient in one second apart.
      batch.PutDecision(*r.dropped, std::numeric_limits<int64_t>::max(),
                        static_cast<uint32_t>(sf::EventFingerprint(c.command_id())));
    }
    batch.batch_.Delete(outbox_,
                        sf::OutboxKey(r.partition, c.not_before().seconds(), c.command_id()));
  }
  TEND_RETURN_IF_ERROR(
      FromRocks(db_->Write(rocksdb::WriteOptions(), &batch.batch_), "removing from the outbox"));
  outbox_commands_.fetch_sub(static_cast<int64_t>(removals.size()), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ChangelogRecord>> Storage::ChangelogOf(const StateBatch& batch) const {
  // Collects the batch's writes to the carried column families, each under its partition.
  class Collector : public rocksdb::WriteBatch::Handler {
   public:
    explicit Collector(const Storage& s) {
      tags_[s.state_->GetID()] = changelog::kState;
      tags_[s.outbox_->GetID()] = changelog::kOutbox;
      tags_[s.timers_->GetID()] = changelog::kTimers;
      meta_ = s.meta_->GetID();
    }
    rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      return Add(cf, key, &value);
    }
    rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      return Add(cf, key, nullptr);
    }
    rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      return Add(cf, key, nullptr);
    }
    rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice&,
                                  const rocksdb::Slice&) override {
      if (tags_.contains(cf)) {
        return rocksdb::Status::InvalidArgument("a range delete of a changelog column family");
      }
      return rocksdb::Status::OK();  // the index's rebuild: not carried
    }
    rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::InvalidArgument("tend writes no merges");
    }
    void LogData(const rocksdb::Slice&) override {}

    std::map<int32_t, std::vector<ChangelogRecord>> writes;       // by partition, batch order
    std::map<int32_t, ChangelogRecord> checkpoints;               // the last of each partition

   private:
    rocksdb::Status Add(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice* value) {
      absl::string_view k(key.data(), key.size());
      char tag = 0;
      if (cf == meta_) {
        if (!absl::StartsWith(k, sf::kCheckpointPrefix)) return rocksdb::Status::OK();
        tag = changelog::kCheckpoint;
      } else if (auto it = tags_.find(cf); it != tags_.end()) {
        tag = it->second;
      } else {
        return rocksdb::Status::OK();  // decisions, index: not carried
      }
      ChangelogRecord r;
      r.key.reserve(1 + k.size());
      r.key.push_back(tag);
      r.key.append(k.data(), k.size());
      if (value != nullptr) {
        r.value.emplace();
        r.value->reserve(1 + value->size());
        r.value->push_back(changelog::kPut);
        r.value->append(value->data(), value->size());
      }
      auto partition = changelog::PartitionOf(r.key);
      if (!partition.ok()) return rocksdb::Status::Corruption(std::string(partition.status().message()));
      r.partition = *partition;
      if (tag == changelog::kCheckpoint) {
        checkpoints[r.partition] = std::move(r);
      } else {
        writes[r.partition].push_back(std::move(r));
      }
      return rocksdb::Status::OK();
    }
    absl::flat_hash_map<uint32_t, char> tags_;
    uint32_t meta_ = 0;
  } collector(*this);
  TEND_RETURN_IF_ERROR(FromRocks(batch.batch_.Iterate(&collector), "reading a commit batch"));
  std::vector<ChangelogRecord> out;
  for (auto& [partition, writes] : collector.writes) {
    if (!collector.checkpoints.contains(partition)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a commit batch writes partition ", partition, "'s state without its checkpoint"));
    }
  }
  for (auto& [partition, checkpoint] : collector.checkpoints) {
    auto w = collector.writes.find(partition);
    if (w != collector.writes.end()) {
      for (ChangelogRecord& r : w->second) out.push_back(std::move(r));
    }
    out.push_back(std::move(checkpoint));
  }
  return out;
}

absl::Status Storage::ApplyChangelog(int32_t partition,
                                     absl::Span<const ChangelogRecord> records,
                                     int64_t next_offset, int64_t checkpoint_next,
                                     const RestoredStateFn& on_state) {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  StateBatch batch(this);
  auto bad = [&](const ChangelogRecord& r, absl::string_view what) {
    return changelog::Damage(absl::DataLossError(absl::StrCat(
        "state changelog record \"", absl::CHexEscape(r.key.substr(0, 64)), "\" of partition ",
        partition, ": ", what, "; the restore stops (nothing of its commit is written)")));
  };
  int64_t outbox_change = 0;
  std::string before_value;
  v1::PatientState after;  // a state record's new value, parsed (and checked) once
  for (const ChangelogRecord& r : records) {  // checked (changelog::Check)
    rocksdb::ColumnFamilyHandle* const cf = ChangelogFamily(r.key[0]);
    const absl::string_view key(r.key.data() + 1, r.key.size() - 1);
    const absl::string_view value =
        r.value.has_value() ? absl::string_view(*r.value).substr(1) : absl::string_view();
    // Hostile until checked: what is written here is read by the engine and the dispatcher.
    if (cf == meta_) {
      v1::PartitionCheckpoint checkpoint;
      if (!checkpoint.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
          checkpoint.partition() != partition || checkpoint.next_offset() < 0) {
        return bad(r, "not a checkpoint of this partition");
      }
      std::string topic;
      rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), meta_, ToSlice(sf::kTopicKey), &topic);
      if (!got.IsNotFound()) TEND_RETURN_IF_ERROR(FromRocks(got, "reading the topic"));
      if (!topic.empty() && checkpoint.topic() != topic) {
        return bad(r, absl::StrCat("a checkpoint of topic \"", checkpoint.topic(),
                                   "\", not of this directory's \"", topic, "\""));
      }
    } else if (cf == outbox_ && r.value.has_value()) {
      v1::ReminderCommand command;
      int32_t p = 0;
      int64_t not_before_s = 0;
      if (!command.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
          !sf::ParseOutboxKey(key, &p, &not_before_s) ||
          key.substr(12) != command.command_id()) {
        return bad(r, "not an outbox command");
      }
    } else if (cf == timers_) {
      if (key.size() < 12 + 2 || key.find('\0', 12) == absl::string_view::npos ||
          (r.value.has_value() && !value.empty())) {
        return bad(r, "not a timer");
      }
    } else if (cf == state_ && r.value.has_value()) {
      AppliedEvents window;  // checked too: the engine reads it at the patient's next event
      if (!ParsePatient(value, key.substr(4), &after, &window).ok()) {
        return bad(r, "not a patient record");
      }
    }
    if (cf == state_ || cf == outbox_) {
      // What the key holds now: the index keys it had (states), the outbox count (commands).
      rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf, ToSlice(key), &before_value);
      if (!got.IsNotFound()) TEND_RETURN_IF_ERROR(FromRocks(got, "reading before a restore"));
      const bool existed = got.ok();
      if (cf == outbox_) {
        outbox_change += (r.value.has_value() ? 1 : 0) - (existed ? 1 : 0);
        int32_t p = 0;
        int64_t not_before_s = 0;
        if (r.value.has_value() && sf::ParseOutboxKey(key, &p, &not_before_s)) {
          auto [it, added] = batch.outbox_arrivals_.try_emplace(p, not_before_s);
          if (!added) it->second = std::min(it->second, not_before_s);
        }
      } else if (on_state) {
        v1::PatientState before;
        if (existed) {
          TEND_RETURN_IF_ERROR(ParsePatient(before_value, key.substr(4), &before, nullptr));
        }
        on_state(partition, existed ? &before : nullptr, r.value.has_value() ? &after : nullptr,
                 &batch);
      }
    }
    if (r.value.has_value()) {
      batch.batch_.Put(cf, ToSlice(key), ToSlice(value));
    } else {
      batch.batch_.Delete(cf, ToSlice(key));
    }
  }
  batch.PutChangelogPosition(partition, next_offset, checkpoint_next);
  batch.outbox_puts_ = outbox_change;
  return Commit(&batch);
}

absl::StatusOr<std::optional<v1::ChangelogPosition>> Storage::LoadChangelogPosition(
    int32_t partition) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, sf::ChangelogPositionKey(partition), &value);
  if (s.IsNotFound()) return std::nullopt;
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading the state changelog position"));
  v1::ChangelogPosition position;
  if (!position.ParseFromString(value) || position.next_offset() < 0) {
    return absl::DataLossError(
        absl::StrCat("corrupt state changelog position of partition ", partition));
  }
  return position;
}

absl::Status Storage::ForEachChangelogRecord(
    int32_t partition, const std::function<absl::Status(ChangelogRecord)>& fn) const {
  const std::string prefix = sf::PartitionPrefix(partition);
  const std::string limit = sf::PartitionPrefix(partition + 1);
  for (const char tag : {changelog::kState, changelog::kOutbox, changelog::kTimers}) {
    rocksdb::ColumnFamilyHandle* const cf = ChangelogFamily(tag);
    rocksdb::ReadOptions ro;
    const rocksdb::Slice upper(limit);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      ChangelogRecord r;
      r.partition = partition;
      r.key.push_back(tag);
      r.key.append(it->key().data(), it->key().size());
      r.value.emplace(1, changelog::kPut);
      r.value->append(it->value().data(), it->value().size());
      TEND_RETURN_IF_ERROR(fn(std::move(r)));
    }
    TEND_RETURN_IF_ERROR(FromRocks(it->status(), "reading a partition for the changelog"));
  }
  std::string value;
  const std::string checkpoint = sf::CheckpointKey(partition);
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, checkpoint, &value);
  if (s.IsNotFound()) return absl::OkStatus();
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading checkpoint"));
  ChangelogRecord r;
  r.partition = partition;
  r.key = changelog::kCheckpoint + checkpoint;
  r.value.emplace(1, changelog::kPut);
  r.value->append(value);
  return fn(std::move(r));
}

rocksdb::ColumnFamilyHandle* Storage::ChangelogFamily(char tag) const {
  switch (tag) {
    case changelog::kState: return state_;
    case changelog::kOutbox: return outbox_;
    case changelog::kTimers: return timers_;
    default: return meta_;  // the checkpoint
  }
}

absl::StatusOr<ChangelogRecord> Storage::CurrentChangelogRecord(int32_t partition,
                                                                absl::string_view key) const {
  ChangelogRecord r;
  r.partition = partition;
  r.key = std::string(key);
  TEND_RETURN_IF_ERROR(
      changelog::Check(ChangelogRecord{partition, r.key, std::string(1, changelog::kPut), 1}));
  rocksdb::ColumnFamilyHandle* const cf = ChangelogFamily(key[0]);
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf, ToSlice(key.substr(1)), &value);
  if (s.IsNotFound()) return r;
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading a key for the state changelog"));
  r.value.emplace(1, changelog::kPut);
  r.value->append(value);
  return r;
}

absl::Status Storage::DropPartition(int32_t partition) {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  const std::string from = sf::PartitionPrefix(partition);
  const std::string to = sf::PartitionPrefix(partition + 1);
  int64_t commands = 0;
  TEND_RETURN_IF_ERROR(ForEachDueCommand(partition, 0, std::numeric_limits<int64_t>::max() - 1,
                                         std::numeric_limits<size_t>::max(),
                                         [&](const v1::ReminderCommand&) {
                                           ++commands;
                                           return absl::OkStatus();
                                         }));
  rocksdb::WriteBatch batch;
  for (rocksdb::ColumnFamilyHandle* cf : {state_, outbox_, timers_, index_}) {
    batch.DeleteRange(cf, from, to);
  }
  batch.Delete(meta_, sf::CheckpointKey(partition));
  batch.Delete(meta_, sf::ChangelogPositionKey(partition));
  TEND_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &batch),
                                 absl::StrCat("dropping partition ", partition)));
  outbox_commands_.fetch_sub(commands, std::memory_order_relaxed);
  return absl::OkStatus();
}

int64_t Storage::WalBytes() const {
  // The WAL files numbered at or above the oldest one RocksDB still needs: a listing of the
  // directory, no lock. (GetSortedWalFiles would stop and restart file deletion, which makes
  // RocksDB scan the whole directory under its mutex, at every scrape.)
  uint64_t oldest = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kMinLogNumberToKeep, &oldest)) return -1;
  int64_t bytes = 0;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = f.path().filename().string();
    uint64_t number = 0;
    if (f.path().extension() != ".log" ||
        !absl::SimpleAtoi(absl::string_view(name).substr(0, name.size() - 4), &number) ||
        number < oldest) {
      continue;
    }
    std::error_code size_ec;
    const uintmax_t size = f.file_size(size_ec);  // RocksDB may have deleted it since
    if (!size_ec) bytes += static_cast<int64_t>(size);
  }
  return ec ? -1 : bytes;
}

StorageStats Storage::stats() const {
  StorageStats s;
  auto property = [&](rocksdb::ColumnFamilyHandle* cf, const std::string& name) {
    uint64_t v = 0;
    return db_->GetIntProperty(cf, name, &v) ? v : 0;
  };
  for (rocksdb::ColumnFamilyHandle* cf : handles_) {
    if (cf->GetName() == rocksdb::kDefaultColumnFamilyName) continue;  // unused
    StorageStats::ColumnFamily c;
    c.name = cf->GetName();
    c.sst_bytes = property(cf, rocksdb::DB::Properties::kTotalSstFilesSize);
    c.memtable_bytes = property(cf, rocksdb::DB::Properties::kCurSizeAllMemTables);
    c.estimated_keys = property(cf, rocksdb::DB::Properties::kEstimateNumKeys);
    c.pending_compaction_bytes =
        property(cf, rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
    s.column_families.push_back(std::move(c));
  }
  if (!handles_.empty()) {
    s.block_cache_bytes = property(handles_[0], rocksdb::DB::Properties::kBlockCacheUsage);
  }
  if (stall_clock_) std::tie(s.delayed, s.stopped) = stall_clock_->Read();
  s.outbox_commands = outbox_commands_.load(std::memory_order_relaxed);
  if (!read_only_) s.wal_bytes = WalBytes();
  return s;
}

OutboxArrivals Storage::TakeOutboxArrivals() {
  std::lock_guard<std::mutex> lock(arrivals_mu_);
  OutboxArrivals taken;
  taken.swap(arrivals_);
  return taken;
}

void Storage::WaitForOutboxArrivals(absl::Time deadline, const std::atomic<bool>& stop) {
  std::unique_lock<std::mutex> lock(arrivals_mu_);
  arrivals_cv_.wait_until(lock, absl::ToChronoTime(deadline),
                          [&] { return !arrivals_.empty() || stop.load(); });
}

void Storage::InterruptOutboxWait() {
  // Under the lock: a waiter is either before its check (and sees `stop`) or waiting.
  std::lock_guard<std::mutex> lock(arrivals_mu_);
  arrivals_cv_.notify_all();
}

absl::Status Storage::ScanTimers(
    int32_t partition, int64_t from_due_s,
    const std::function<bool(int64_t, absl::string_view, absl::string_view)>& fn) const {
  const std::string prefix = sf::PartitionPrefix(partition);
  const std::string start = sf::TimerKey(partition, std::max<int64_t>(from_due_s, 0), "", "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), timers_));
  for (it->Seek(ToSlice(start)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    int64_t due_s;
    absl::string_view patient_id, rule_id;
    if (!sf::ParseTimerKey(absl::string_view(it->key().data(), it->key().size()), &due_s,
                           &patient_id, &rule_id)) {
      return absl::DataLossError(absl::StrCat("corrupt timer key ", it->key().ToString(true)));
    }
    if (!fn(due_s, patient_id, rule_id)) break;
  }
  return FromRocks(it->status(), "reading timers");
}

absl::Status Storage::ForEachTimer(
    int32_t partition,
    const std::function<absl::Status(int64_t, absl::string_view, absl::string_view)>& fn) const {
  absl::Status status;
  TEND_RETURN_IF_ERROR(ScanTimers(partition, 0, [&](int64_t due_s, absl::string_view patient,
                                                    absl::string_view rule) {
    status = fn(due_s, patient, rule);
    return status.ok();
  }));
  return status;
}

absl::Status Storage::ScanIndex(absl::string_view start, absl::string_view limit,
                               const std::function<bool(absl::string_view)>& fn,
                               const Snapshot* at) const {
  rocksdb::ReadOptions read = ReadAt(at);
  const rocksdb::Slice upper = ToSlice(limit);
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, index_));
  for (it->Seek(ToSlice(start)); it->Valid(); it->Next()) {
    if (!fn(absl::string_view(it->key().data(), it->key().size()))) break;
  }
  return FromRocks(it->status(), "reading the index");
}

uint64_t Storage::ApproximateIndexBytes(absl::string_view start, absl::string_view limit) const {
  const rocksdb::Range range(ToSlice(start), ToSlice(limit));
  rocksdb::SizeApproximationOptions options;
  options.include_memtables = true;
  options.include_files = true;
  uint64_t bytes = 0;
  if (!db_->GetApproximateSizes(options, index_, &range, 1, &bytes).ok()) return 0;
  return bytes;
}

Storage::Snapshot Storage::TakeSnapshot() const {
  if (read_only_) return nullptr;
  rocksdb::DB* db = db_.get();
  const rocksdb::Snapshot* snapshot = db->GetSnapshot();
  if (snapshot == nullptr) return nullptr;
  return Snapshot(snapshot, [db](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); });
}

absl::StatusOr<std::optional<std::string>> Storage::GetIndexParameters(const Snapshot* at) const {
  std::string value;
  rocksdb::Status s = db_->Get(ReadAt(at), meta_, ToSlice(sf::kIndexParametersKey), &value);
  if (s.IsNotFound()) return std::nullopt;
  TEND_RETURN_IF_ERROR(FromRocks(s, "reading index_parameters"));
  return value;
}

absl::StatusOr<std::vector<v1::Decision>> Storage::RecentDecisions(absl::string_view patient_id,
                                                                   size_t limit) const {
  std::vector<v1::Decision> out;
  const std::string prefix = sf::DecisionPrefix(patient_id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), decisions_));
  std::string upper = prefix;
  upper.back() = '\1';  // just past every key with the prefix
  for (it->SeekForPrev(ToSlice(upper)); it->Valid() && it->key().starts_with(ToSlice(prefix)) &&
                                        out.size() < limit;
       it->Prev()) {
    v1::Decision d;
    if (!d.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("corrupt decision record ", it->key().ToString(true)));
    }
    out.push_back(std::move(d));
  }
  TEND_RETURN_IF_ERROR(FromRocks(it->status(), "reading decisions"));
  return out;
}

absl::Status Storage::ForEachState(
    const std::function<absl::Status(const v1::PatientState&)>& fn) const {
  return ForEachStateBetween("", std::nullopt, fn);
}

absl::Status Storage::ForEachStateIn(
    int32_t partition, const std::function<absl::Status(const v1::PatientState&)>& fn) const {
  return ForEachStateBetween(sf::PartitionPrefix(partition), sf::PartitionPrefix(partition + 1),
                             fn);
}

absl::Status Storage::ForEachStateBetween(
    const std::string& from, const std::optional<std::string>& to,
    const std::function<absl::Status(const v1::PatientState&)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  const std::string limit = to.value_or("");
  rocksdb::Slice upper(limit);
  if (to.has_value()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, state_));
  v1::PatientState state;
  for (it->Seek(from); it->Valid(); it->Next()) {
    TEND_RETURN_IF_ERROR(ParsePatient(absl::string_view(it->value().data(), it->value().size()),
                                      absl::StrCat("at key ", it->key().ToString(true)), &state,
                                      nullptr));
    TEND_RETURN_IF_ERROR(fn(state));
  }
  return FromRocks(it->status(), "reading patient states");
}

absl::Status Storage::Commit(StateBatch* batch, const CommitOptions& options) {
  if (read_only_) return absl::FailedPreconditionError("storage opened read-only");
  rocksdb::WriteOptions wo;
  wo.sync = options.sync;
  wo.disableWAL = unlogged_.load();
  if (wo.disableWAL && options.sync) {
    return absl::InvalidArgumentError("a commit to an unlogged directory cannot be synced");
  }
  TEND_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch->batch_), "committing state batch"));
  outbox_commands_.fetch_add(batch->outbox_puts_, std::memory_order_relaxed);
  if (!batch->outbox_arrivals_.empty()) {
    {
      std::lock_guard<std::mutex> lock(arrivals_mu_);
      for (const auto& [partition, not_before_s] : batch->outbox_arrivals_) {
        auto [it, added] = arrivals_.try_emplace(partition, not_before_s);
        if (!added) it->second = std::min(it->second, not_before_s);
      }
    }
    arrivals_cv_.notify_all();
  }
  return absl::OkStatus();
}

}  // namespace tend
