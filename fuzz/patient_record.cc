// Fuzz target: a patient record as the state directory holds it (storage/format.h
// DecodePatient: format 7, or format 6), the directory being hostile input like any other. Every
// record must be refused or decoded. A decoded one must hold a window the fold can work on
// (fingerprints ascending and distinct; hours all stamped or none), encode back to a record that
// decodes to the same state bytes and window, and survive a fold: the event folded is then in the
// window; a copy leaves the window as it was, a new event within its bound. The state bytes go
// through the parse and upgrades a cache miss does (format 7's glucose readings and format 8's
// rule memories into columns, format 9's event marks into fingerprints, format 10's coupons into
// columns); a state that passes the coupons' checks must survive issues and redemptions and
// still pass them.
#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "projections/config.h"
#include "projections/coupons.h"
#include "projections/glucose.h"
#include "projections/marks.h"
#include "rules/memory.h"
#include "storage/applied_events.h"
#include "storage/format.h"
#include "tend/v1/state.pb.h"

namespace {

using namespace tend;

bool WellFormed(const AppliedEvents& applied) {
  const auto& entries = applied.entries();
  size_t unstamped = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && entries[i - 1].fingerprint >= entries[i].fingerprint) return false;
    unstamped += entries[i].hour == kUnknownFoldHour ? 1 : 0;
  }
  return unstamped == 0 || unstamped == entries.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view record(reinterpret_cast<const char*>(data), size);
  absl::string_view state_bytes;
  AppliedEvents applied;
  if (!storage_format::DecodePatient(record, &state_bytes, &applied)) return 0;
  // What a reader without the window accepts is a superset, with the same state.
  absl::string_view state_only;
  if (!storage_format::DecodePatient(record, &state_only, nullptr) || state_only != state_bytes) {
    std::abort();
  }
  if (!WellFormed(applied)) std::abort();
  std::string again;
  storage_format::EncodePatient(state_bytes, applied, &again);
  absl::string_view state_again;
  AppliedEvents applied_again;
  if (!storage_format::DecodePatient(again, &state_again, &applied_again) ||
      state_again != state_bytes || !(applied_again == applied)) {
    std::abort();
  }
  v1::PatientState state;
  if (state.ParseFromArray(state_bytes.data(), static_cast<int>(state_bytes.size())) &&
      projections::UpgradeGlucose(state.mutable_glucose())) {
    // Format 7 readings moved into parallel columns in (time, value) order: upgrading again
    // checks that order and changes nothing.
    const v1::GlucoseState& g = state.glucose();
    if (g.fasting_size() != 0 || g.fasting_at_s_size() != g.fasting_mmol_per_l_size()) std::abort();
    const std::string upgraded = g.SerializeAsString();
    if (!projections::UpgradeGlucose(state.mutable_glucose()) ||
        state.glucose().SerializeAsString() != upgraded) {
      std::abort();
    }
    (void)projections::ComputeGlucose(projections::DefaultProjectionConfig(), g,
                                      absl::UTCTimeZone(), absl::FromUnixSeconds(size * 997));
  }
  v1::PatientState rules_state;
  if (rules_state.ParseFromArray(state_bytes.data(), static_cast<int>(state_bytes.size())) &&
      UpgradeRuleMemories(rules_state.mutable_rules())) {
    // Format 8 memories moved into parallel columns, a row per rule and a Held in each:
    // upgrading again checks that and changes nothing; every row reads back.
    const v1::RulesState& r = rules_state.rules();
    const int n = r.memory_rule_size();
    if (r.rules_size() != 0 || r.memory_last_fired_s_size() != n ||
        r.memory_timer_due_s_size() != n || r.memory_absence_anchor_s_size() != n ||
        r.memory_became_size() != n || r.memory_date_target_s_size() != n) {
      std::abort();
    }
    const std::string upgraded = r.SerializeAsString();
    if (!UpgradeRuleMemories(rules_state.mutable_rules()) ||
        rules_state.rules().SerializeAsString() != upgraded) {
      std::abort();
    }
    for (int row = 0; row < n; ++row) {
      if (FindRuleMemoryRow(r, r.memory_rule(row)) != row ||
          !v1::RuleMemory::Held_IsValid(RuleMemoryRef(rules_state.mutable_rules(), row).became())) {
        std::abort();
      }
    }
  }
  v1::PatientState marks_state;
  if (marks_state.ParseFromArray(state_bytes.data(), static_cast<int>(state_bytes.size())) &&
      projections::UpgradeEventMarks(&marks_state)) {
    // Format 9 marks named by fingerprint: upgrading again finds no mark with an id left (one
    // would hold both, refused) and changes nothing.
    const std::string upgraded = marks_state.SerializeAsString();
    if (!projections::UpgradeEventMarks(&marks_state) ||
        marks_state.SerializeAsString() != upgraded) {
      std::abort();
    }
  }
  v1::PatientState coupons_state;
  if (coupons_state.ParseFromArray(state_bytes.data(), static_cast<int>(state_bytes.size())) &&
      projections::UpgradeEventMarks(&coupons_state) &&
      projections::UpgradeCoupons(coupons_state.mutable_coupons())) {
    // Format 10 coupons moved into columns the reader accepts: upgrading again changes nothing,
    // the view reads every row, and issues and redemptions of ids already held and new keep the
    // columns acceptable.
    v1::CouponState* c = coupons_state.mutable_coupons();
    const std::string upgraded = c->SerializeAsString();
    if (c->outstanding_size() != 0 || c->redeemed_size() != 0 ||
        !projections::UpgradeCoupons(c) || c->SerializeAsString() != upgraded) {
      std::abort();
    }
    const absl::Time as_of = absl::FromUnixSeconds(static_cast<int64_t>(size) * 7919);
    (void)projections::ComputeCoupons(*c, absl::UTCTimeZone(), as_of);
    const std::string held =
        c->outstanding_id_length_size() > 0 ? c->outstanding_ids().substr(0, c->outstanding_id_length(0)) : "";
    for (const std::string& id : {held, std::string("fz-new")}) {
      v1::Event e;
      e.set_event_id(absl::StrCat("fz-", id));
      e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(as_of));
      e.mutable_coupon_issued()->set_coupon_id(id);
      e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(absl::ToUnixSeconds(as_of) + 86400);
      projections::ApplyCoupons(e, c);
      e.mutable_coupon_redeemed()->set_coupon_id(id);
      projections::ApplyCoupons(e, c);
      if (!projections::UpgradeCoupons(c)) std::abort();
      // Redeemed, the coupon is outstanding no more; the caps hold.
      size_t offset = 0;
      for (uint32_t length : c->outstanding_id_length()) {
        if (c->outstanding_ids().compare(offset, length, id) == 0) std::abort();
        offset += length;
      }
      if (c->outstanding_id_length_size() > projections::kMaxOutstandingCoupons ||
          c->redeemed_coupon_size() > projections::kMaxRedemptions) {
        std::abort();
      }
      (void)projections::ComputeCoupons(*c, absl::UTCTimeZone(), as_of);
    }
  }
  // A fold at a clock and of an event the input's first bytes choose, with a small bound.
  uint64_t fingerprint = 0;
  int64_t clock_s = 0;
  for (size_t i = 0; i < 8 && i < size; ++i) fingerprint |= uint64_t{data[i]} << (8 * i);
  for (size_t i = 8; i < 13 && i < size; ++i) clock_s |= int64_t{data[i]} << (8 * (i - 8));
  DedupeOptions options;
  options.window_s = 86400 * (1 + size % 60);
  options.max_events = 16 + size % 32;
  const AppliedEvents before = applied;
  const bool added = applied.Fold(fingerprint, clock_s, options);
  if (!applied.Contains(fingerprint) || !WellFormed(applied)) std::abort();
  // A record may hold more than the bound (format 6 kept every event; the bound may be lowered)
  // until a new event is folded.
  if (added ? applied.size() > options.max_events : !(applied == before)) std::abort();
  return 0;
}
