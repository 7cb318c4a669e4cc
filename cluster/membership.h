// Which engine instance owns which partition of the events topic, known to every instance
// (docs/design.md, "State that follows its partition": the role of Kafka Streams'
// application.server metadata). The dev broker has no DescribeGroups, so instances say it
// themselves: each writes a tend.v1.MemberRecord (proto/tend/v1/cluster.proto) keyed by its
// advertised address to a compacted one-partition topic whenever what it owns changes and every
// `heartbeat`, and every instance follows the topic from its start.
//
// Who owns a partition: among the instances heard from within `expiry` (by this instance's own
// clock, so clocks need not agree), the one that claimed it most recently - by the offset, in the
// topic's one partition, of the first record of its current claim. A partition nobody claims (a
// rebalance in progress, its owner gone silent) has no owner: queries for it are UNAVAILABLE,
// never answered by an instance that may be stale. A record also names the partitions its
// instance holds but refuses (a damaged state changelog), so that the others can say who holds
// such a partition and why, rather than that nobody does.
//
// Member records are signed (`keys`: the cluster key file, auth/record_mac.h): a record names
// where queries and callers' tokens go, so with keys every record without a MAC under one of
// them is ignored (unless it carries no MAC at all and `accept_unsigned`), as one beyond the
// bounds is (logged, and counted unless read before: from before the start, or again), and
// whoever may write the topic without the key cannot add a member. A signed record written
// again later (a replay) is ignored when its `written_at` (the writer's clock, to the nanosecond)
// is not after that of the last signed record heard of its address (held at most one `expiry`
// ahead of the reader's clock); a reader that never heard a later one (started after the
// instance's last record, which the replayed copy has replaced in compaction) hears it once,
// and the instance it names counts as live for one `expiry`.
//
// Thread safety: thread-safe; it writes and reads on threads of its own.
#ifndef TEND_CLUSTER_MEMBERSHIP_H_
#define TEND_CLUSTER_MEMBERSHIP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "auth/record_mac.h"
#include "cluster/replay_bar.h"
#include "kafka/kafka.h"
#include "kafka/partition_reader.h"
#include "kafka/props.h"

namespace tend {

// What a member's record may hold (records beyond are skipped, with a log line): far above any
// deployment, bounding what records written by someone else can make an instance hold (at most
// kMaxMembers x kMaxMemberClaims claims, ~50 MB).
inline constexpr size_t kMaxMemberRecordBytes = 64 << 10;
inline constexpr size_t kMaxMemberAddressBytes = 256;
inline constexpr int kMaxMemberClaims = 4096;           // partitions one instance owns
inline constexpr int32_t kMaxMemberPartition = 1 << 16;  // a claimed partition is below this
inline constexpr size_t kMaxMembers = 256;               // heard within ten expiries
inline constexpr size_t kMaxRefusalWhyBytes = 1024;      // a refused partition's reason
// Addresses whose last signed record's time is kept (cluster/replay_bar.h), past the members'
// forgetting.
inline constexpr size_t kMaxReplayBars = 16 * kMaxMembers;

// The Kafka header of a member record holding its MAC, and the domain the MAC is computed in
// (auth/record_mac.h): the record kind and its format version.
inline constexpr char kMemberMacHeader[] = "tend.mac";
inline constexpr char kMemberMacDomain[] = "tend.membership/1";

struct MembershipOptions {
  KafkaProps kafka;  // bootstrap.servers and the operator's settings
  std::string topic = "tend.membership";
  std::string events_topic = "tend.events";
  std::string address;  // this instance's advertised host:port (required)
  // The cluster key file's keys: this instance's records are signed with the first, and only
  // records signed with one of them are heard (but see `accept_unsigned`). Null: records are
  // written unsigned and every well-formed record is heard (loopback and tests;
  // tools/commands.cc refuses it elsewhere unless told).
  std::shared_ptr<const RecordKeys> keys;
  // With `keys`: also hear records that carry no MAC at all (counted apart), for a move to
  // signed records without a gap (every instance gets the key with this, then loses this).
  // Meanwhile the key protects nothing: whoever may write the topic can add a member.
  bool accept_unsigned = false;
  // What this instance owns now (Engine::OwnedPartitions), polled every `poll`.
  std::function<std::vector<int32_t>()> owned;
  // What it holds and refuses, partition -> why (Engine::RefusedPartitions), polled with
  // `owned`; unset: nothing.
  std::function<std::map<int32_t, std::string>()> refused;
  absl::Duration poll = absl::Milliseconds(100);
  absl::Duration heartbeat = absl::Seconds(3);
  absl::Duration expiry = absl::Seconds(15);
};

// One instance as this instance last heard of it.
struct Member {
  std::string address;
  std::vector<int32_t> partitions;
  std::map<int32_t, std::string> refused;  // partition -> why, as Printable text
  absl::Time heard_at;  // this instance's clock when its last record arrived
  bool live = false;    // heard within `expiry` and not leaving
};

// What the records read so far did: for tend_membership_* metrics.
// Records written before this instance started are counted when heard, not when ignored.
struct MembershipStats {
  int64_t heard = 0;             // records heard (this instance's own too)
  int64_t heard_unsigned = 0;    // heard without a MAC, as `accept_unsigned` allows
  int64_t unsigned_records = 0;  // ignored: no MAC under a key of the cluster key file
  int64_t replayed = 0;          // ignored: not written after the last heard of its address
  int64_t beyond_bounds = 0;     // ignored: beyond the bounds above
  int64_t live_members = 0;      // instances heard within `expiry` and not leaving (itself too)
};

class Membership {
 public:
  static absl::StatusOr<std::unique_ptr<Membership>> Start(MembershipOptions options);
  // Says it is leaving (owning nothing), then stops.
  ~Membership();

  // The address of the instance that owns `partition` as far as the records read so far say;
  // nullopt when none does.
  std::optional<std::string> OwnerOf(int32_t partition) const;
  // A live instance that holds `partition` and refuses it, and why; nullopt when none does.
  struct Refuser {
    std::string address;
    std::string why;
  };
  std::optional<Refuser> RefuserOf(int32_t partition) const;
  std::vector<Member> Members() const;
  MembershipStats Stats() const;
  const std::string& address() const { return options_.address; }

 private:
  explicit Membership(MembershipOptions options) : options_(std::move(options)) {}
  void Announce();
  void Follow();
  // What a record read says, heard or ignored (with Ignore).
  void Hear(const ReadRecord& r);
  enum class Ignored { kBeyondBounds, kUnsigned, kReplayed, kCount };
  // `counted`: read for the first time since this instance started (not history).
  void Ignore(const ReadRecord& r, Ignored kind, const std::string& why, bool counted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes this instance's record now.
  absl::Status Write(const std::vector<int32_t>& partitions,
                     const std::map<int32_t, std::string>& refused, bool leaving);

  struct Heard {
    std::vector<int32_t> partitions;
    std::map<int32_t, int64_t> claimed_since;  // partition -> offset of its claim's first record
    std::map<int32_t, std::string> refused;    // partition -> why (Printable)
    absl::Time heard_at;
    bool leaving = false;
  };

  const MembershipOptions options_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<PartitionReader> reader_;
  mutable absl::Mutex mu_;
  std::map<std::string, Heard> members_ ABSL_GUARDED_BY(mu_);  // by address
  MembershipStats stats_ ABSL_GUARDED_BY(mu_);                 // live_members is counted by Stats()
  // The written_at of the last signed record heard of each address, kept past the member's
  // forgetting (for kMaxReplayBars addresses): an older record written again is not heard.
  // Reads options_, declared above it (members are initialised in declaration order).
  ReplayBar replay_bar_ ABSL_GUARDED_BY(mu_){kMaxReplayBars, options_.expiry};
  // When each kind of ignored record was last logged, [kind][counted].
  absl::Time last_logged_[static_cast<int>(Ignored::kCount)][2] ABSL_GUARDED_BY(mu_) = {
      {absl::InfinitePast(), absl::InfinitePast()},
      {absl::InfinitePast(), absl::InfinitePast()},
      {absl::InfinitePast(), absl::InfinitePast()}};
  int64_t last_offset_ ABSL_GUARDED_BY(mu_) = -1;  // the highest offset read
  int64_t start_end_ = 0;  // the topic's end when this instance started (set before Follow)
  std::atomic<bool> stop_{false};
  std::thread announcer_, follower_;
};

}  // namespace tend

#endif  // TEND_CLUSTER_MEMBERSHIP_H_
