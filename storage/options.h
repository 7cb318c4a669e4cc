// Options of the state directory (StorageOptions, per open) and of a commit (CommitOptions, per
// call), apart from storage.h so that their users need no RocksDB headers.
#ifndef TEND_STORAGE_OPTIONS_H_
#define TEND_STORAGE_OPTIONS_H_

#include <cstddef>

#include "absl/time/time.h"

namespace tend {

struct StorageOptions {
  // Shared LRU block cache for all column families.
  size_t block_cache_bytes = 256 << 20;
  // Bound on all memtables together (RocksDB WriteBufferManager).
  size_t write_buffer_budget_bytes = 256 << 20;
  // When the WAL files together pass this, the families holding the oldest file's data are
  // flushed so that it can go (RocksDB max_total_wal_size). A trigger checked at each write, not
  // a limit: commits faster than the flushes run past it until a family's memtables stop them,
  // and the WAL comes back near it once the flushes catch up (docs/design.md, "The WAL's bound").
  size_t wal_budget_bytes = 512 << 20;
  // Create the directory when missing (primary only).
  bool create_if_missing = true;
  // Decisions (Explain's records) older than this are removed as RocksDB compacts them, and
  // files are compacted at least daily so old ones go; zero keeps every decision (primary only).
  absl::Duration decisions_retention = absl::ZeroDuration();
  // Commits skip the WAL (RocksDB disableWAL), for a directory built from nothing and thrown away
  // when the build stops before its end (tend replay's NEW_DIR.partial): there the WAL's
  // durability serves no one, and its bytes cost the commit writer a copy of every batch into
  // the page cache (docs/design.md, "A rebuild without the WAL"). A new directory only: the open
  // marks it unfinished (the file `tend-unfinished`), and every later open refuses it until
  // Storage::FinishUnlogged has flushed every family to tables and removed the mark. A crash
  // before then leaves an incomplete state (whatever the flushes had written), which the mark
  // keeps anyone from reading as a state. Primary only; not with CommitOptions::sync.
  bool unlogged = false;
};

struct CommitOptions {
  // fsync the WAL before Commit returns. Off by default: a process crash (SIGKILL) loses nothing
  // either way, since the WAL is in the OS page cache; a machine crash without sync may lose the
  // last commits, and their offsets with them, so the engine re-reads those records: consistent.
  bool sync = false;
};

}  // namespace tend

#endif  // TEND_STORAGE_OPTIONS_H_
