#include "cluster/membership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/printable.h"
#include "base/status.h"
#include "base/thread_name.h"
#include "tend/v1/cluster.pb.h"

namespace tend {

absl::StatusOr<std::unique_ptr<Membership>> Membership::Start(MembershipOptions options) {
  if (options.address.empty()) return absl::InvalidArgumentError("--advertise is required");
  if (!options.owned) return absl::InvalidArgumentError("MembershipOptions::owned is required");
  auto m = std::unique_ptr<Membership>(new Membership(std::move(options)));
  TEND_ASSIGN_OR_RETURN(m->producer_, Producer::Create(m->options_.kafka));
  TEND_ASSIGN_OR_RETURN(const int partitions,
                        TopicPartitionCount(m->producer_->handle(), m->options_.topic));
  if (partitions != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the membership topic ", m->options_.topic, " has ", partitions,
        " partitions: it must have exactly one (deploy/create-topics.sh), so that its records "
        "are in one order"));
  }
  // Where the topic ends now: ignored records before it are history, not counted.
  int64_t low = 0, high = 0;
  if (const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
          m->producer_->handle(), m->options_.topic.c_str(), 0, &low, &high, 5000);
      err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    m->start_end_ = high;
  } else {
    TEND_LOG_WARN(
        "membership: where %s ends was not found (%s): member records ignored are "
        "counted from its start, those written before this instance started too",
        m->options_.topic, rd_kafka_err2str(err));
  }
  TEND_ASSIGN_OR_RETURN(m->reader_, PartitionReader::Create(m->options_.kafka));
  m->follower_ = std::thread([p = m.get()] { p->Follow(); });
  m->announcer_ = std::thread([p = m.get()] { p->Announce(); });
  return m;
}

Membership::~Membership() {
  stop_ = true;
  if (announcer_.joinable()) announcer_.join();
  if (producer_ != nullptr) {
    if (absl::Status s = Write({}, {}, /*leaving=*/true); !s.ok()) {
      TEND_LOG_WARN("membership: could not say this instance leaves: %s", s.ToString());
    }
    (void)producer_->Flush(absl::Seconds(5));
  }
  if (follower_.joinable()) follower_.join();
}

absl::Status Membership::Write(const std::vector<int32_t>& partitions,
                               const std::map<int32_t, std::string>& refused, bool leaving) {
  v1::MemberRecord record;
  record.set_format_version(1);
  record.set_address(options_.address);
  record.set_topic(options_.events_topic);
  for (int32_t p : partitions) record.add_partitions(p);
  // The reasons are the engine's text, which may quote a record of the changelog: made printable
  // and cut, and left out past 16 KiB in all (every partition of an instance refused, as a newer
  // changelog format would have it), so that the record stays far below what readers accept.
  size_t why_bytes = 0;
  for (const auto& [p, why] : refused) {
    v1::Refusal* r = record.add_refused();
    r->set_partition(p);
    if (why_bytes < (16 << 10)) {
      r->set_why(Bounded(Printable(why), kMaxRefusalWhyBytes / 2));
      why_bytes += r->why().size();
    }
  }
  // To the nanosecond (protobuf's GetCurrentTime has whole seconds): readers take a record not
  // written after the last one of its address for one written again (Hear).
  const absl::Duration since_epoch = absl::Now() - absl::UnixEpoch();
  const int64_t seconds = absl::ToInt64Seconds(since_epoch);
  record.mutable_written_at()->set_seconds(seconds);
  record.mutable_written_at()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(since_epoch - absl::Seconds(seconds))));
  record.set_leaving(leaving);
  const std::string value = record.SerializeAsString();
  std::string mac;
  std::vector<KafkaHeader> headers;
  if (options_.keys != nullptr) {
    mac = options_.keys->Sign(kMemberMacDomain, options_.address, value);
    headers.push_back({kMemberMacHeader, mac});
  }
  TEND_RETURN_IF_ERROR(
      producer_->Produce(options_.topic, 0, options_.address, value, headers, nullptr));
  return absl::OkStatus();
}

void Membership::Announce() {
  SetThreadName("tend-announce");
  std::vector<int32_t> said;
  std::map<int32_t, std::string> said_refused;
  absl::Time said_at = absl::InfinitePast();
  while (!stop_.load()) {
    std::vector<int32_t> now = options_.owned();
    std::sort(now.begin(), now.end());
    std::map<int32_t, std::string> refused;
    if (options_.refused) refused = options_.refused();
    if (now != said || refused != said_refused || absl::Now() - said_at >= options_.heartbeat) {
      if (absl::Status s = Write(now, refused, /*leaving=*/false); s.ok()) {
        said = std::move(now);
        said_refused = std::move(refused);
        said_at = absl::Now();
      } else {
        TEND_LOG_WARN("membership: %s", s.ToString());
      }
    }
    absl::SleepFor(options_.poll);
  }
}

void Membership::Follow() {
  SetThreadName("tend-members");
  reader_->Follow(
      options_.topic, 0, RD_KAFKA_OFFSET_BEGINNING, [this](const ReadRecord& r) { Hear(r); }, stop_,
      [](const absl::Status& s) { TEND_LOG_WARN("membership: %s", s.ToString()); });
}

void Membership::Hear(const ReadRecord& r) {
  // Bounds no instance comes near: anyone who may write the topic could otherwise grow every
  // instance's memory by a claim of 300,000 partitions a record (ACLs should stop them first:
  // docs/deployment.md). With the cluster key, what no key holder wrote is not parsed at all
  // (but for records with no MAC at all while `accept_unsigned`).
  std::string refused;
  Ignored kind = Ignored::kBeyondBounds;
  bool unsigned_heard = false;
  const std::optional<absl::string_view> mac = r.Header(kMemberMacHeader);
  v1::MemberRecord record;
  if (r.value.has_value() && r.value->size() > kMaxMemberRecordBytes) {
    refused = absl::StrCat("a record of ", r.value->size(), " bytes");
  } else if (options_.keys != nullptr && !r.value.has_value()) {
    // tend writes no tombstones here (an instance leaving says so in a record): compaction
    // would forget the instance's record for whoever reads the topic next.
    kind = Ignored::kUnsigned;
    refused = "a tombstone (no tend engine writes one)";
  } else if (options_.keys != nullptr && !mac.has_value() && options_.accept_unsigned) {
    unsigned_heard = true;  // a move to signed records under way (--unsigned-membership)
  } else if (options_.keys != nullptr &&
             !options_.keys->Verify(kMemberMacDomain, r.key, *r.value, mac.value_or(""))) {
    kind = Ignored::kUnsigned;
    refused = mac.has_value() ? "its MAC is not under a key of the cluster key file"
                              : "it carries no MAC (the cluster key file requires one)";
  }
  if (refused.empty()) {
    if (!r.value.has_value() ||
        !record.ParseFromArray(r.value->data(), static_cast<int>(r.value->size())) ||
        record.format_version() != 1 || record.address() != r.key ||
        record.topic() != options_.events_topic) {
      return;  // not a member of this deployment (or a tombstone)
    }
    if (record.address().size() > kMaxMemberAddressBytes) {
      refused = absl::StrCat("an address of ", record.address().size(), " bytes");
    } else if (record.partitions_size() > kMaxMemberClaims ||
               record.refused_size() > kMaxMemberClaims) {
      refused = record.partitions_size() > kMaxMemberClaims
                    ? absl::StrCat("a claim of ", record.partitions_size(), " partitions")
                    : absl::StrCat("a refusal of ", record.refused_size(), " partitions");
    }
    for (int32_t p : record.partitions()) {
      if (!refused.empty()) break;
      if (p < 0 || p >= kMaxMemberPartition) refused = absl::StrCat("a claim of partition ", p);
    }
    for (const v1::Refusal& refusal : record.refused()) {
      if (!refused.empty()) break;
      if (refusal.partition() < 0 || refusal.partition() >= kMaxMemberPartition) {
        refused = absl::StrCat("a refusal of partition ", refusal.partition());
      } else if (refusal.why().size() > kMaxRefusalWhyBytes) {
        refused = absl::StrCat("a refusal's reason of ", refusal.why().size(), " bytes");
      }
    }
  }
  const absl::Time written_at = absl::FromUnixSeconds(record.written_at().seconds()) +
                                absl::Nanoseconds(record.written_at().nanos());
  absl::MutexLock lock(&mu_);
  // Members silent for ten expiries are forgotten: their claims are long void, and a topic's
  // worth of made-up addresses would otherwise stay in memory for good.
  const absl::Time now = absl::Now();
  std::erase_if(members_, [&](const auto& member) {
    return now - member.second.heard_at > 10 * options_.expiry;
  });
  if (refused.empty() && !members_.contains(record.address()) && members_.size() >= kMaxMembers) {
    refused = absl::StrCat("a member beyond the ", kMaxMembers, " heard within ",
                           absl::FormatDuration(10 * options_.expiry));
  }
  // A record read again (the reader went back to the topic's start: an offset out of range) is
  // not news: what it says is checked as ever, but ignoring it counts nothing.
  const bool reread = r.offset <= last_offset_;
  last_offset_ = std::max(last_offset_, r.offset);
  // A signed instance's records are written at times that only grow (its clock, to the
  // nanosecond): one that is not later than the last heard of its address was written before
  // it, and is here again (a replay, which the MAC does not tell apart), or its writer's clock
  // went back. Unsigned records are not held to it: whoever writes them can write any time, and
  // a time far ahead would silence the address's later records.
  const bool is_signed = options_.keys != nullptr && !unsigned_heard;
  if (refused.empty() && is_signed) {
    if (auto bar = replay_bar_.Blocks(record.address(), written_at); bar.has_value()) {
      kind = Ignored::kReplayed;
      refused = absl::StrCat(
          "written at ", absl::FormatTime(absl::RFC3339_full, written_at, absl::UTCTimeZone()),
          ", not after the last record heard of ", record.address(), " (",
          absl::FormatTime(absl::RFC3339_full, *bar, absl::UTCTimeZone()),
          "): a record written again, or its writer's clock went back");
    }
  }
  if (!refused.empty()) {
    Ignore(r, kind, refused, /*counted=*/!reread && r.offset >= start_end_);
    return;
  }
  ++(unsigned_heard ? stats_.heard_unsigned : stats_.heard);
  if (is_signed) replay_bar_.Heard(record.address(), written_at, now);
  Heard& h = members_[record.address()];
  h.heard_at = now;
  h.leaving = record.leaving();
  std::map<int32_t, int64_t> since;
  for (int32_t p : record.partitions()) {
    auto it = h.claimed_since.find(p);
    since[p] = it != h.claimed_since.end() ? it->second : r.offset;
  }
  h.claimed_since = std::move(since);
  h.partitions.assign(record.partitions().begin(), record.partitions().end());
  h.refused.clear();
  for (const v1::Refusal& refusal : record.refused()) {
    h.refused[refusal.partition()] = Printable(refusal.why());
  }
}

void Membership::Ignore(const ReadRecord& r, Ignored kind, const std::string& why, bool counted) {
  int64_t& count = kind == Ignored::kUnsigned   ? stats_.unsigned_records
                   : kind == Ignored::kReplayed ? stats_.replayed
                                                : stats_.beyond_bounds;
  if (counted) ++count;
  // The first of each kind is logged, then one a minute; records not counted have their own
  // turn, so that those from before the start do not hide the ones an alert is about.
  const absl::Time now = absl::Now();
  absl::Time& logged = last_logged_[static_cast<int>(kind)][counted ? 1 : 0];
  if (now - logged < absl::Minutes(1)) return;
  logged = now;
  TEND_LOG_WARN(
      "membership: %s offset %d (key \"%s\") ignored%s: %s (%d such records since this instance "
      "started; only tend engines%s should write this topic)",
      options_.topic, r.offset, Printable(Bounded(r.key, 64)),
      counted ? ""
              : ", read before (this instance's start, or a read again from the topic's start)",
      why, count, options_.keys != nullptr ? " with this deployment's cluster key" : "");
}

std::optional<std::string> Membership::OwnerOf(int32_t partition) const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  std::optional<std::string> owner;
  int64_t newest = -1;
  for (const auto& [address, h] : members_) {
    if (h.leaving || now - h.heard_at > options_.expiry) continue;
    auto it = h.claimed_since.find(partition);
    if (it != h.claimed_since.end() && it->second > newest) {
      newest = it->second;
      owner = address;
    }
  }
  return owner;
}

std::optional<Membership::Refuser> Membership::RefuserOf(int32_t partition) const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  std::optional<Refuser> refuser;
  absl::Time heard = absl::InfinitePast();
  for (const auto& [address, h] : members_) {
    if (h.leaving || now - h.heard_at > options_.expiry) continue;
    auto it = h.refused.find(partition);
    if (it != h.refused.end() && h.heard_at > heard) {
      heard = h.heard_at;
      refuser = Refuser{address, it->second};
    }
  }
  return refuser;
}

std::vector<Member> Membership::Members() const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  std::vector<Member> out;
  for (const auto& [address, h] : members_) {
    out.push_back({address, h.partitions, h.refused, h.heard_at,
                   !h.leaving && now - h.heard_at <= options_.expiry});
  }
  return out;
}

MembershipStats Membership::Stats() const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  MembershipStats stats = stats_;
  for (const auto& [address, h] : members_) {
    stats.live_members += !h.leaving && now - h.heard_at <= options_.expiry ? 1 : 0;
  }
  return stats;
}

}  // namespace tend
