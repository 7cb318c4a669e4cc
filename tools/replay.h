// tend replay: rebuilds every projection from the log into a NEW state directory, in REPLAY mode
// (docs/design.md, "Run modes"): the same engine, rules and fold as LIVE, but no command enters an
// outbox and no bad record is dead-lettered again, so a replay can never send a reminder.
//
// The rebuild goes into DIR.partial and is renamed to DIR only once every partition is folded
// to the end of the log and committed: DIR exists only complete. A replay that fails or is
// stopped leaves DIR.partial (remove it, or keep it to look at) and says so.
//
// Thread safety: Replay() blocks its caller; the stop flag may be set from any thread.
#ifndef TEND_TOOLS_REPLAY_H_
#define TEND_TOOLS_REPLAY_H_

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/engine.h"

namespace tend {

// The most fold threads a replay runs (--fold-threads).
inline constexpr int kMaxFoldThreads = 64;

struct ReplayOptions {
  // brokers, topic, rules, projections and kafka are used; mode, exit_when_idle and (when
  // empty) group_id are set by Replay().
  EngineOptions engine;
  // The new state directory. Refused when it exists and is not empty (kFailedPrecondition).
  std::string to_dir;
  // When set: replay this archive (tend archive) instead of reading Kafka; engine.brokers is
  // then not used, and the topic is the archive's.
  std::string archive_path;
  // engine.start_at (--from TIME): each partition from its first record with a Kafka timestamp
  // at or after it, from Kafka or from the archive alike. engine.end_at (--until TIME): only
  // the records timestamped at or before it (engine/engine.h): a view of the past, which
  // SwapState and a live engine refuse.

  // Engines folding at once (--fold-threads), each a range of the archive's partitions into
  // the one new directory on a thread of its own, with its own reader of the archive and
  // engine.cache_max_bytes / N of cache. The state is the same as with one (partition-scoped:
  // docs/design.md, "Fold threads"). More than 1 needs archive_path; no more than the archive's
  // partitions run.
  int fold_threads = 1;

  // When set: every command the replay decided, one proto3-JSON ReminderCommand per line, in
  // commit order (written to FILE.partial, renamed when the replay completes); with several
  // fold threads, each partition's in its commit order, the partitions' interleaved.
  std::string commands_out;
  // Progress on `progress`: a bar redrawn in place (a terminal), or a line every
  // `progress_every` (a log file or a pipe).
  bool progress_bar = false;
  absl::Duration progress_every = absl::Seconds(5);
};

struct ReplayReport {
  int64_t records_in_log = 0;  // across the partitions when the replay started
  EngineStats stats;
  absl::Duration elapsed;
  double records_per_second = 0;
};

// Runs the replay. kFailedPrecondition: `to_dir` is not a new directory; kCancelled: `stop`
// was set before the end of the log; otherwise the engine's or Kafka's error.
absl::StatusOr<ReplayReport> Replay(const ReplayOptions& options, const std::atomic<bool>& stop,
                                    std::ostream& progress);

struct ArchiveOptions {
  std::string brokers;
  std::string topic = "tend.events";
  KafkaProps kafka;  // extra librdkafka properties
  std::string out;   // the archive file (written as OUT.partial, renamed when complete)
  bool progress_bar = false;
  absl::Duration progress_every = absl::Seconds(5);
};
struct ArchiveReport {
  int64_t records = 0;
  int64_t bytes = 0;
  int partitions = 0;
  absl::Duration elapsed;
};
// tend archive: exports every record the topic holds now (each partition from its low to its
// high watermark at the start) into an archive file (kafka/archive.h). kCancelled when `stop`
// is set first; nothing half-written is left behind.
absl::StatusOr<ArchiveReport> ExportArchive(const ArchiveOptions& options,
                                            const std::atomic<bool>& stop,
                                            std::ostream& progress);

struct SwapReport {
  std::string previous_dir;      // where the replaced state now is
  int64_t commands_carried = 0;  // undelivered commands copied from the old outbox
};
// tend replay --swap --db LIVE --to NEW: makes the rebuilt state NEW the engine's state at LIVE.
// The engine on LIVE must be stopped (kFailedPrecondition while any process holds LIVE). The
// commands still waiting in LIVE's outbox are copied into NEW's (a replay writes none, and they
// must not be lost); then LIVE is renamed to LIVE.replaced-<UTC time> (kept for rollback) and NEW
// to LIVE. The engine, started again on LIVE, resumes from the offsets the replay stored: records
// the live engine folded after them are folded again, and the commands they decide carry the same
// command ids as before, which receivers dedupe (docs/design.md, "Outbox").
absl::StatusOr<SwapReport> SwapState(const std::string& live_dir, const std::string& new_dir);

// "[=====>    ]  48.2%  482,113/1,000,000 records  85.1k/s  ETA 6s" (width: the bar's cells).
std::string FormatProgressBar(int64_t done, int64_t total, double per_second, int width);

}  // namespace tend

#endif  // TEND_TOOLS_REPLAY_H_
