#include "index/planner.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/crc32c.h"
#include "base/hash.h"
#include "base/status.h"
#include "base/time.h"
#include "events/codec.h"
#include "index/patient_index.h"
#include "projections/churn.h"
#include "projections/patient.h"
#include "storage/format.h"

namespace tend {

namespace {

namespace sf = storage_format;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
// "L2": the index kind the query walks follows the fingerprint (the plan stays the same across
// pages even when the index sizes that chose it change). "L3": a CRC-32C at the end.
constexpr char kTokenVersion[] = "L3";
constexpr size_t kTokenCrcBytes = 4;

// What identifies a query across its pages: the request without page_size and page_token.
uint64_t QueryFingerprint(const v1::ListPatientsRequest& request) {
  v1::ListPatientsRequest q = request;
  q.clear_page_size();
  q.clear_page_token();
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  {
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    q.SerializeToCodedStream(&coded);
  }
  return Fingerprint64(bytes);
}

// The kind byte of a token from ListPatientsTokenAt: no plan chosen yet, the cursor is a bare
// partition prefix (BE32).
constexpr char kAnyPlan = '*';

struct PageToken {
  char kind = 0;
  std::string after;  // the last key examined, or (kAnyPlan) the partition prefix
};

// The token of `request` decoded, checked against the query it must belong to.
absl::StatusOr<PageToken> ParsePageToken(const v1::ListPatientsRequest& request,
                                         uint64_t fingerprint) {
  // The longest token this server issues: 11 bytes of header, an index key (a partition, a
  // kind, a value of at most 256 bytes and a patient id of at most 128, fixed fields) and a CRC,
  // about 540 characters in base64: well under this.
  constexpr size_t kMaxTokenChars = 1024;
  std::string raw;
  if (request.page_token().size() > kMaxTokenChars ||
      !absl::WebSafeBase64Unescape(request.page_token(), &raw) ||
      raw.size() < 11 + kTokenCrcBytes || raw.compare(0, 2, kTokenVersion) != 0) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  uint32_t crc = 0;
  for (size_t i = raw.size() - kTokenCrcBytes; i < raw.size(); ++i) {
    crc = (crc << 8) | static_cast<uint8_t>(raw[i]);
  }
  raw.resize(raw.size() - kTokenCrcBytes);
  if (crc != Crc32c(raw)) {
    return absl::InvalidArgumentError(
        "page_token: damaged (cut short or altered); pass next_page_token as it was returned");
  }
  uint64_t fp = 0;
  for (int i = 0; i < 8; ++i) fp = (fp << 8) | static_cast<uint8_t>(raw[2 + i]);
  if (fp != fingerprint) {
    return absl::InvalidArgumentError("page_token: belongs to a query with other filters or as_of");
  }
  PageToken token{raw[10], raw.substr(11)};
  // Every cursor starts with its partition (a partition number, so below 2^31); a fresh
  // partition's is that alone.
  if (token.after.size() < 4 || static_cast<uint8_t>(token.after[0]) >= 0x80 ||
      (token.kind == kAnyPlan && token.after.size() != 4)) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  return token;
}

std::string MakePageToken(uint64_t fingerprint, char kind, absl::string_view after) {
  std::string token = kTokenVersion;
  for (int i = 7; i >= 0; --i) token.push_back(static_cast<char>(fingerprint >> (8 * i)));
  token.push_back(kind);
  token.append(after.data(), after.size());
  const uint32_t crc = Crc32c(token);
  for (int i = 3; i >= 0; --i) token.push_back(static_cast<char>(crc >> (8 * i)));
  return absl::WebSafeBase64Escape(token);
}

// The byte string just after every key that starts with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

std::string WithTime(std::string prefix, absl::Time t) {
  const int64_t s = t == absl::InfinitePast() ? 0 : absl::ToUnixSeconds(t);
  sf::AppendBe64(static_cast<uint64_t>(std::max<int64_t>(0, s)), &prefix);
  return prefix;
}

// How a query finds its candidates: one index kind (with a value prefix, and for time-keyed
// kinds a time range [from, to) that depends on the partition's as-of).
struct Plan {
  sf::IndexKind kind = sf::IndexKind::kLastActivity;
  std::string value;  // after the kind: "program\0", "1\0", BE16(band)
  // The time range of 'L' and 'R' keys at a partition's as-of.
  std::function<std::pair<absl::Time, absl::Time>(absl::Time)> times;
  // Whether the answer depends on the as-of. The index holds facts of every folded event; a
  // patient with facts after the as-of may look different at the as-of, so such plans also walk
  // those patients (the tail: the 'F' keys when the as-of is at or after the partition clock,
  // else the 'L' keys from the as-of's UTC day on), skipping there the patients their own
  // range holds.
  bool as_of_dependent = true;
};

// One key range of the `index` column family to walk: [start, limit).
struct IndexRange {
  std::string start;
  std::string limit;
  sf::IndexKind kind;
  bool tail = false;  // skip patients with a key in the plan's other ranges
};

// The ranges of `plan` in `partition` at `as_of` (the partition clock: `clock`), in key order,
// disjoint. Without `use_ahead` (the 'F' keys were built with another config) the tail is the
// patients active since the as-of's day even at the clock.
std::vector<IndexRange> RangesOf(const Plan& plan, int32_t partition, absl::Time as_of,
                                 absl::Time clock, bool use_ahead) {
  using Kind = sf::IndexKind;
  const std::string prefix = sf::IndexPrefix(partition, plan.kind) + plan.value;
  std::vector<IndexRange> ranges;
  IndexRange primary{prefix, PrefixEnd(prefix), plan.kind};
  if (plan.times) {
    auto [from, to] = plan.times(as_of);
    primary.start = WithTime(prefix, from);
    if (to != absl::InfiniteFuture()) primary.limit = WithTime(prefix, to);
  }
  ranges.push_back(primary);
  if (plan.as_of_dependent) {
    if (as_of >= clock && use_ahead) {
      const std::string ahead = sf::IndexPrefix(partition, Kind::kAhead);
      ranges.push_back({ahead, PrefixEnd(ahead), Kind::kAhead, true});
    } else {
      const std::string activity = sf::IndexPrefix(partition, Kind::kLastActivity);
      const int64_t day_s = absl::ToUnixSeconds(as_of);
      IndexRange tail{WithTime(activity, absl::FromUnixSeconds(day_s - (day_s % 86400 + 86400) % 86400)),
                      PrefixEnd(activity), Kind::kLastActivity, true};
      if (plan.kind == Kind::kLastActivity) {
        // The same kind: the tail is what the primary range leaves of it.
        tail.start = std::max(tail.start, primary.limit);
        if (tail.start < tail.limit) ranges.push_back(tail);
      } else {
        ranges.push_back(tail);
      }
    }
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const IndexRange& a, const IndexRange& b) { return a.start < b.start; });
  return ranges;
}

// Whether the patient of a churn-risk index key may have a risk of at least `threshold` at
// `as_of`, judged from the active days in the key alone (false: certainly not).
bool MayReachRisk(const projections::ProjectionConfig& config, absl::string_view key,
                  double threshold, absl::Time as_of) {
  sf::RiskKeyDays k;
  if (!sf::ParseRiskKeyDays(key, &k)) return true;
  projections::ActiveDaySummary days;
  days.days = static_cast<int>(k.days);
  days.first_day = k.first_day;
  days.last_day = k.last_day;
  // A risk of 1 is reached in floating point (P(alive) under ~5e-17, far from the last active
  // day), though the closed form never reaches it: only the patient's view can tell.
  if (!(threshold < 1)) return days.days >= 2;
  const auto day = projections::ChurnRiskReachedOn(config, days, threshold);
  if (!day) return false;
  // The local day starts no earlier than 14 hours before its UTC start (UTC+14 is the
  // easternmost offset in use).
  return absl::FromCivil(*day, absl::UTCTimeZone()) - absl::Hours(14) <= as_of;
}

}  // namespace

bool MatchesListFilters(const v1::ListPatientsRequest& r, const v1::PatientView& view) {
  if (r.stage() != v1::ChurnView::STAGE_UNSPECIFIED && view.churn().stage() != r.stage()) {
    return false;
  }
  if (r.has_min_churn_risk() && !(view.churn().churn_risk() >= r.min_churn_risk())) return false;
  if (!r.program_id().empty() && view.program_id() != r.program_id()) return false;
  if (!r.staff_id().empty() && view.acquisition().current_staff_id() != r.staff_id()) {
    return false;
  }
  return !r.has_activated() || view.activation().activated() == r.activated();
}

absl::Status ListPatientsPage(const Storage& storage, const projections::ProjectionConfig& config,
                              const v1::ListPatientsRequest& r, v1::ListPatientsResponse* response,
                              ListPatientsCost* cost, const std::vector<int32_t>* partitions,
                              int64_t max_examined_given) {
  if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be 0..", kMaxPageSize, " (0: ",
                                     kDefaultPageSize, ")"));
  }
  if (!v1::ChurnView::Stage_IsValid(r.stage())) {
    return absl::InvalidArgumentError(absl::StrCat("stage: ", r.stage(), " is not a tend.v1.ChurnView.Stage"));
  }
  if (r.has_min_churn_risk() && !(r.min_churn_risk() >= 0 && r.min_churn_risk() <= 1)) {
    return absl::InvalidArgumentError("min_churn_risk: must be in [0, 1]");
  }
  // Any value an event may carry (free text), so every patient can be listed by its own.
  if (!r.program_id().empty()) {
    TEND_RETURN_IF_ERROR(CheckTextArgument("program_id", r.program_id()));
  }
  if (!r.staff_id().empty()) TEND_RETURN_IF_ERROR(CheckTextArgument("staff_id", r.staff_id()));
  std::optional<absl::Time> fixed_as_of;
  if (r.has_as_of()) {
    TEND_RETURN_IF_ERROR(CheckProtoTime(r.as_of(), "as_of"));
    fixed_as_of = FromProtoTime(r.as_of());
  }
  const uint64_t fingerprint = QueryFingerprint(r);
  std::optional<char> token_kind;  // the plan of the walk so far; unset: choose one
  std::string after;  // the last key examined by the previous page
  if (!r.page_token().empty()) {
    TEND_ASSIGN_OR_RETURN(PageToken token, ParsePageToken(r, fingerprint));
    if (token.kind != kAnyPlan) token_kind = token.kind;
    after = std::move(token.after);
  }
  const int page_size = r.page_size() == 0 ? kDefaultPageSize : r.page_size();

  // One moment for the whole call: the clocks, the 'F' keys written at them, the index and the
  // states agree.
  const Storage::Snapshot snapshot = storage.TakeSnapshot();
  auto index_parameters = storage.GetIndexParameters(&snapshot);
  if (!index_parameters.ok()) return index_parameters.status();
  if (!index_parameters->has_value()) {
    return absl::UnavailableError(
        "the patient index is being rebuilt (the engine does so at start when "
                        "its layout or the churn model changed); retry shortly");
  }
  auto checkpoints = storage.LoadCheckpoints(&snapshot);
  if (!checkpoints.ok()) return checkpoints.status();
  std::map<int32_t, absl::Time> as_ofs, clocks;
  for (const auto& c : *checkpoints) {
    if (partitions != nullptr &&
        !std::binary_search(partitions->begin(), partitions->end(), c.partition())) {
      continue;
    }
    clocks[c.partition()] = absl::FromUnixSeconds(c.clock().seconds());
    as_ofs[c.partition()] = fixed_as_of.value_or(clocks[c.partition()]);
  }

  // The plans that can answer the query; the one with the fewest index bytes to walk wins (ties:
  // the first). Each is a superset of the answer; every candidate is checked exactly below.
  using Kind = sf::IndexKind;
  auto days = [](int n) { return n * absl::Hours(24); };
  std::vector<Plan> plans;
  if (!r.program_id().empty()) {
    plans.push_back({Kind::kProgram, r.program_id() + std::string(1, '\0'), nullptr, false});
  }
  if (!r.staff_id().empty()) {
    plans.push_back({Kind::kStaff, r.staff_id() + std::string(1, '\0'), nullptr, false});
  }
  if (r.stage() == v1::ChurnView::HARD_CHURNED) plans.push_back({Kind::kHardChurned, "", nullptr});
  // The keys that depend on the config ('R', 'A', 'F') are used only when built with this one
  // (a reader started with another config walks other indexes).
  const bool index_current = **index_parameters == PatientIndexParameters(config);
  if (r.has_min_churn_risk() && index_current) {
    // The largest band <= X: its day comes no later than X's.
    int band = 0;
    for (int b : sf::kChurnRiskBandsPermille) {
      if (b / 1000.0 <= r.min_churn_risk()) band = b;
    }
    if (band > 0) {
      const std::string value{static_cast<char>(band >> 8), static_cast<char>(band & 0xff)};
      plans.push_back({Kind::kChurnRisk, value, [](absl::Time as_of) {
                         return std::make_pair(absl::InfinitePast(), as_of + absl::Seconds(1));
                       }});
    }
  }
  if (r.has_activated() && index_current) {
    plans.push_back({Kind::kActivated, std::string(r.activated() ? "1" : "0") + '\0', nullptr});
  }
  // Stages as ranges of the last activity (margins of three days absorb the local-day rounding
  // of the stage rules).
  const auto& c = config;
  std::function<std::pair<absl::Time, absl::Time>(absl::Time)> stage_times;
  switch (r.stage()) {
    case v1::ChurnView::NEW:  // first seen within new_days: so was the last activity
      stage_times = [&](absl::Time t) {
        return std::make_pair(t - days(c.lifecycle_new_days + 3), absl::InfiniteFuture());
      };
      break;
    case v1::ChurnView::ACTIVE:
      stage_times = [&](absl::Time t) {
        return std::make_pair(t - days(c.lifecycle_active_days + 3), absl::InfiniteFuture());
      };
      break;
    case v1::ChurnView::SILENT:
      stage_times = [&](absl::Time t) {
        return std::make_pair(t - days(c.lifecycle_silent_days + 3),
                              t - days(c.lifecycle_active_days - 2));
      };
      break;
    case v1::ChurnView::LOST:
      stage_times = [&](absl::Time t) {
        return std::make_pair(absl::InfinitePast(), t - days(c.lifecycle_silent_days - 2));
      };
      break;
    default:
      break;
  }
  if (stage_times) plans.push_back({Kind::kLastActivity, "", stage_times});
  // Without a filter an index serves, walk every patient (each has one 'L' key). With one, never:
  // a filter's own range holds a subset of the patients, and its tail is the few ahead of the
  // clock. (One plan per kind, so a page token's kind names its plan.)
  if (plans.empty()) plans.push_back({Kind::kLastActivity, "", nullptr, false});

  const Plan* plan = nullptr;
  if (token_kind) {
    for (const Plan& p : plans) {
      if (static_cast<char>(p.kind) == *token_kind) {
        plan = &p;
        break;
      }
    }
    if (plan == nullptr) {
      return absl::InvalidArgumentError("page_token: not a token this server issued");
    }
  } else {
    // Entries estimated from bytes: the key bytes before the patient id, plus ~16 for the id
    // and ~16 of RocksDB's own per entry.
    auto entry_bytes = [](const IndexRange& rg) -> double {
      switch (rg.kind) {
        case Kind::kLastActivity:
          return 13 + 32;
        case Kind::kChurnRisk:
          return sf::kRiskKeyFixedBytes + 32;
        case Kind::kHardChurned:
          return 5 + 32;
        default:
          return static_cast<double>(rg.start.size()) + 32;  // prefix + value
      }
    };
    double least = 0;
    for (const Plan& p : plans) {
      double entries = 0;
      for (const auto& [partition, as_of] : as_ofs) {
        for (const IndexRange& rg :
             RangesOf(p, partition, as_of, clocks[partition], index_current)) {
          entries += storage.ApproximateIndexBytes(rg.start, rg.limit) / entry_bytes(rg);
        }
      }
      if (plan == nullptr || entries < least) {
        plan = &p;
        least = entries;
      }
    }
  }

  // Candidates examined per call are bounded, so a sparse filter cannot hold the server: the
  // page then comes back short, with a token to go on.
  int64_t max_examined = ListPatientsMaxExamined(page_size);
  if (max_examined_given > 0) max_examined = std::min(max_examined, max_examined_given);
  int64_t examined = 0;
  std::string last_key;
  bool more = false;
  absl::Status failure;
  v1::PatientState state;
  for (const auto& partition_as_of : as_ofs) {
    // Named copies, not structured bindings: the lambdas below capture them (clang 14, used for
    // fuzzing, cannot capture a structured binding).
    const int32_t partition = partition_as_of.first;
    const absl::Time as_of = partition_as_of.second;
    const std::vector<IndexRange> ranges =
        RangesOf(*plan, partition, as_of, clocks[partition], index_current);
    // Whether the patient has a key in one of the plan's own (not tail) ranges.
    auto in_primary = [&](const v1::PatientState& state) {
      for (const std::string& k : PatientIndexKeys(partition, state, config)) {
        for (const IndexRange& rg : ranges) {
          if (!rg.tail && k >= rg.start && k < rg.limit) return true;
        }
      }
      return false;
    };
    for (IndexRange rg : ranges) {
      if (!after.empty()) {
        if (after >= rg.limit) continue;  // done on an earlier page
        if (after >= rg.start) rg.start = after + std::string(1, '\0');
      }
      absl::Status s = storage.ScanIndex(rg.start, rg.limit, [&](absl::string_view key) {
        if (response->patients_size() == page_size || examined == max_examined) {
          more = true;
          return false;
        }
        ++examined;
        last_key.assign(key.data(), key.size());
        if (rg.kind == Kind::kChurnRisk && !MayReachRisk(config, key, r.min_churn_risk(), as_of)) {
          return true;  // between the band and the threshold: ruled out without the state
        }
        auto found =
            storage.GetPatient(partition, sf::IndexKeyPatient(key, rg.kind), &state, nullptr, &snapshot);
        if (!found.ok()) {
          failure = found.status();
          return false;
        }
        if (!*found) return true;  // an index entry without a state: skip
        if (rg.tail && in_primary(state)) return true;  // walked in the plan's own range
        v1::PatientView view = projections::ComputeView(config, state, as_of);
        if (!MatchesListFilters(r, view)) return true;
        *response->add_patients() = std::move(view);
        return true;
      }, &snapshot);
      if (!s.ok()) return s;
      if (!failure.ok()) return failure;
      if (more) break;
    }
    if (more) break;
  }
  // What the page cost, for operators and tests: the index entries examined to fill it, and the
  // index kind walked.
  if (cost != nullptr) {
    cost->examined = examined;
    cost->index_kind = static_cast<char>(plan->kind);
  }
  if (more && !last_key.empty()) {
    // A full page ends at its last patient; a short one at the last candidate examined.
    response->set_next_page_token(
        MakePageToken(fingerprint, static_cast<char>(plan->kind), last_key));
  }
  return absl::OkStatus();
}

int64_t ListPatientsMaxExamined(int32_t page_size) {
  return 20'000 + 20LL * (page_size == 0 ? kDefaultPageSize : page_size);
}

absl::StatusOr<int32_t> ListPatientsTokenPartition(const v1::ListPatientsRequest& request) {
  TEND_ASSIGN_OR_RETURN(PageToken token, ParsePageToken(request, QueryFingerprint(request)));
  uint32_t partition = 0;
  for (int i = 0; i < 4; ++i) partition = (partition << 8) | static_cast<uint8_t>(token.after[i]);
  return static_cast<int32_t>(partition);  // below 2^31: ParsePageToken checked
}

std::string ListPatientsTokenAt(const v1::ListPatientsRequest& request, int32_t partition) {
  return MakePageToken(QueryFingerprint(request), kAnyPlan, sf::PartitionPrefix(partition));
}

}  // namespace tend
