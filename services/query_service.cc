#include "services/query_service.h"

#include <google/protobuf/util/time_util.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/io/coded_stream.h>

#include <map>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/storage_format.h"
#include "engine/event_codec.h"
#include "engine/views.h"
#include "projections/patient.h"
#include "services/grpc_status.h"

namespace tend {

namespace {

// INVALID_ARGUMENT naming `field` unless `t` is a valid google.protobuf.Timestamp.
grpc::Status CheckTimestamp(const google::protobuf::Timestamp& t, const char* field) {
  if (t.seconds() < google::protobuf::util::TimeUtil::kTimestampMinSeconds ||
      t.seconds() > google::protobuf::util::TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
      t.nanos() > 999'999'999) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat(field, ": not a valid timestamp (0001-01-01 to 9999-12-31)"));
  }
  return grpc::Status::OK;
}

// INVALID_ARGUMENT naming `field` unless `id` is an id (event_codec.h IsValidId).
grpc::Status CheckId(const std::string& id, const char* field) {
  if (IsValidId(id)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat(field, ": must be 1-128 characters of [A-Za-z0-9._:-]"));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace

grpc::Status QueryService::CohortStats(grpc::ServerContext*,
                                       const v1::CohortStatsRequest* request,
                                       v1::CohortStatsResponse* response) {
  std::optional<absl::Time> as_of;
  if (request->has_as_of()) {
    if (grpc::Status s = CheckTimestamp(request->as_of(), "as_of"); !s.ok()) return s;
    as_of = FromProto(request->as_of());
  }
  auto stats = ComputeCohortStats(*storage_, config_, as_of);
  if (!stats.ok()) return ToGrpc(stats.status());
  *response->mutable_stats() = *std::move(stats);
  return grpc::Status::OK;
}

grpc::Status QueryService::GetPatient(grpc::ServerContext*, const v1::GetPatientRequest* request,
                                      v1::GetPatientResponse* response) {
  if (grpc::Status s = CheckId(request->patient_id(), "patient_id"); !s.ok()) return s;
  if (request->has_as_of()) {
    if (grpc::Status s = CheckTimestamp(request->as_of(), "as_of"); !s.ok()) return s;
  }
  auto state = storage_->FindPatient(request->patient_id());
  if (!state.ok()) return ToGrpc(state.status());
  if (!state->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no events folded yet for patient ", request->patient_id()));
  }
  absl::Time as_of;
  if (request->has_as_of()) {
    as_of = FromProto(request->as_of());
  } else {
    auto clock = DefaultAsOf(*storage_, **state);
    if (!clock.ok()) return ToGrpc(clock.status());
    as_of = *clock;
  }
  *response->mutable_view() = projections::ComputeView(config_, **state, as_of);
  if (request->include_state()) *response->mutable_state() = std::move(**state);
  return grpc::Status::OK;
}

grpc::Status QueryService::Explain(grpc::ServerContext*, const v1::ExplainRequest* request,
                                   v1::ExplainResponse* response) {
  if (grpc::Status s = CheckId(request->patient_id(), "patient_id"); !s.ok()) return s;
  if (request->limit() < 0 || request->limit() > 1000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: must be 0..1000 (0: 50)");
  }
  auto decisions =
      storage_->RecentDecisions(request->patient_id(), request->limit() == 0 ? 50 : request->limit());
  if (!decisions.ok()) return ToGrpc(decisions.status());
  for (auto& d : *decisions) *response->add_decisions() = std::move(d);
  return grpc::Status::OK;
}

namespace {

namespace sf = storage_format;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
constexpr char kTokenVersion[] = "L1";

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
  return sf::EventFingerprint(bytes);
}

// One key range of the `index` column family to walk: [start, limit).
struct IndexRange {
  std::string start;
  std::string limit;
};

// The byte string just after every key that starts with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

std::string TimeBound(int32_t partition, sf::IndexKind kind, absl::Time t) {
  std::string k = sf::IndexPrefix(partition, kind);
  sf::AppendBe64(static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixSeconds(t))), &k);
  return k;
}

// The patient id in an index key of `kind`.
absl::string_view PatientOfKey(absl::string_view key, sf::IndexKind kind) {
  key.remove_prefix(5);
  switch (kind) {
    case sf::IndexKind::kProgram:
    case sf::IndexKind::kStaff: {
      const size_t nul = key.find('\0');
      return nul == absl::string_view::npos ? absl::string_view() : key.substr(nul + 1);
    }
    case sf::IndexKind::kLastActivity:
      return key.size() >= 8 ? key.substr(8) : absl::string_view();
    default:
      return key;
  }
}

}  // namespace

grpc::Status QueryService::ListPatients(grpc::ServerContext*,
                                        const v1::ListPatientsRequest* request,
                                        v1::ListPatientsResponse* response) {
  const auto& r = *request;
  if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("page_size: must be 0..", kMaxPageSize, " (0: ",
                                     kDefaultPageSize, ")"));
  }
  if (!v1::ChurnView::Stage_IsValid(r.stage())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("stage: ", r.stage(), " is not a tend.v1.ChurnView.Stage"));
  }
  if (r.has_min_churn_risk() && !(r.min_churn_risk() >= 0 && r.min_churn_risk() <= 1)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "min_churn_risk: must be in [0, 1]");
  }
  if (!r.program_id().empty()) {
    if (grpc::Status s = CheckId(r.program_id(), "program_id"); !s.ok()) return s;
  }
  if (!r.staff_id().empty()) {
    if (grpc::Status s = CheckId(r.staff_id(), "staff_id"); !s.ok()) return s;
  }
  std::optional<absl::Time> fixed_as_of;
  if (r.has_as_of()) {
    if (grpc::Status s = CheckTimestamp(r.as_of(), "as_of"); !s.ok()) return s;
    fixed_as_of = FromProto(r.as_of());
  }
  const uint64_t fingerprint = QueryFingerprint(r);
  std::string after;  // the last key returned by the previous page
  if (!r.page_token().empty()) {
    std::string raw;
    if (!absl::WebSafeBase64Unescape(r.page_token(), &raw) || raw.size() < 10 ||
        raw.compare(0, 2, kTokenVersion) != 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_token: not a token this server issued");
    }
    uint64_t fp = 0;
    for (int i = 0; i < 8; ++i) fp = (fp << 8) | static_cast<uint8_t>(raw[2 + i]);
    if (fp != fingerprint) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_token: belongs to a query with other filters or as_of");
    }
    after = raw.substr(10);
  }
  const int page_size = r.page_size() == 0 ? kDefaultPageSize : r.page_size();

  auto checkpoints = storage_->LoadCheckpoints();
  if (!checkpoints.ok()) return ToGrpc(checkpoints.status());
  std::map<int32_t, absl::Time> clocks;
  absl::Time t_min = absl::InfiniteFuture(), t_max = absl::InfinitePast();
  for (const auto& c : *checkpoints) {
    const absl::Time clock = absl::FromUnixSeconds(c.clock().seconds());
    clocks[c.partition()] = clock;
    t_min = std::min(t_min, fixed_as_of.value_or(clock));
    t_max = std::max(t_max, fixed_as_of.value_or(clock));
  }

  // The driving index and its range in each partition (margins of three days absorb the UTC-day
  // flooring of the activity index and the local-day rounding of the stage rules; every
  // candidate is checked exactly below).
  using Kind = sf::IndexKind;
  auto days = [](int n) { return n * absl::Hours(24); };
  Kind kind = Kind::kLastActivity;  // alone (activated, churn risk): every patient a candidate
  std::string value;                // kProgram, kStaff: the value the keys start with
  absl::Time from = absl::UnixEpoch(), to = absl::InfiniteFuture();  // kLastActivity
  if (!r.program_id().empty() || !r.staff_id().empty()) {
    kind = r.program_id().empty() ? Kind::kStaff : Kind::kProgram;
    value = (r.program_id().empty() ? r.staff_id() : r.program_id()) + std::string(1, '\0');
  } else if (r.stage() == v1::ChurnView::HARD_CHURNED) {
    kind = Kind::kHardChurned;
  } else if (r.stage() == v1::ChurnView::NEW) {
    // First seen within new_days: so was the last activity (never before first seen).
    from = t_min - days(config_.lifecycle_new_days + 3);
  } else if (r.stage() == v1::ChurnView::ACTIVE) {
    from = t_min - days(config_.lifecycle_active_days + 3);
  } else if (r.stage() == v1::ChurnView::SILENT) {
    from = t_min - days(config_.lifecycle_silent_days + 3);
    to = t_max - days(config_.lifecycle_active_days - 2);
  } else if (r.stage() == v1::ChurnView::LOST) {
    to = t_max - days(config_.lifecycle_silent_days - 2);
  }
  auto range = [&](int32_t p) {
    const std::string prefix = sf::IndexPrefix(p, kind) + value;
    if (kind != Kind::kLastActivity) return IndexRange{prefix, PrefixEnd(prefix)};
    return IndexRange{TimeBound(p, kind, from), to == absl::InfiniteFuture()
                                                    ? PrefixEnd(prefix)
                                                    : TimeBound(p, kind, to)};
  };

  // Candidates examined per call are bounded, so a sparse filter cannot hold the server: the
  // page then comes back short, with a token to go on.
  const int64_t max_examined = 20'000 + 20LL * page_size;
  int64_t examined = 0;
  std::string last_key;
  bool more = false;
  absl::Status failure;
  v1::PatientState state;
  for (const auto& [partition, clock] : clocks) {
    IndexRange rg = range(partition);
    if (!after.empty()) {
      if (after >= rg.limit) continue;  // an earlier partition, done
      if (after >= rg.start) rg.start = after + std::string(1, '\0');
    }
    absl::Status s = storage_->ScanIndex(rg.start, rg.limit, [&](absl::string_view key) {
      if (response->patients_size() == page_size || examined == max_examined) {
        more = true;
        return false;
      }
      ++examined;
      last_key.assign(key.data(), key.size());
      const absl::string_view patient = PatientOfKey(key, kind);
      auto found = storage_->GetPatient(partition, patient, &state);
      if (!found.ok()) {
        failure = found.status();
        return false;
      }
      if (!*found) return true;  // an index entry without a state: skip
      const absl::Time as_of = fixed_as_of.value_or(clock);
      v1::PatientView view = projections::ComputeView(config_, state, as_of);
      if (r.stage() != v1::ChurnView::STAGE_UNSPECIFIED && view.churn().stage() != r.stage()) {
        return true;
      }
      if (r.has_min_churn_risk() && !(view.churn().churn_risk() >= r.min_churn_risk())) return true;
      if (!r.program_id().empty() && view.program_id() != r.program_id()) return true;
      if (!r.staff_id().empty() && view.acquisition().current_staff_id() != r.staff_id()) {
        return true;
      }
      if (r.has_activated() && view.activation().activated() != r.activated()) return true;
      *response->add_patients() = std::move(view);
      return true;
    });
    if (!s.ok()) return ToGrpc(s);
    if (!failure.ok()) return ToGrpc(failure);
    if (more) break;
  }
  if (more && !last_key.empty()) {
    // A full page ends at its last patient; a short one at the last candidate examined.
    std::string token = kTokenVersion;
    for (int i = 7; i >= 0; --i) token.push_back(static_cast<char>(fingerprint >> (8 * i)));
    token += last_key;
    response->set_next_page_token(absl::WebSafeBase64Escape(token));
  }
  return grpc::Status::OK;
}

}  // namespace tend
