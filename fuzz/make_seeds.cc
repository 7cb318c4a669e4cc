// Writes the seed corpora of fuzz/corpus/ that are generated rather than written by hand:
// event_record (serialized events, one per body kind and a clock tick), event_json (the same
// events' JSON lines), archive (small archives, finished and cut short), and patient_record (a
// simulated patient's stored record as written today, unstamped, and in format 6; with three
// fasting glucose readings, two in one second, as columns (format 8) and as messages (format
// 7); with three rule memories as columns (format 9) and as messages (format 8)). Run from the
// repository root after changing the event or archive format:
//   build/fuzz/fuzz_make_seeds fuzz/corpus
// The YAML seeds (engine_config, rules) are copies of deploy/ files and hand-written cases, and
// the page_token seeds and patient_record/format-7-out-of-order (format-7 with its first two
// fingerprints swapped: refused, so a decoder that stopped checking the order fails the replay)
// are hand-written bytes.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "dev/simulate.h"
#include "events/codec.h"
#include "kafka/archive.h"
#include "kafka/ticker.h"
#include "projections/coupons.h"
#include "projections/marks.h"
#include "projections/patient.h"
#include "rules/memory.h"
#include "storage/applied_events.h"
#include "storage/format.h"

namespace {

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tend;
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR (fuzz/corpus)\n");
    return 2;
  }
  const std::string root = argv[1];
  for (const char* target : {"event_record", "event_json", "archive", "patient_record"}) {
    std::filesystem::create_directories(root + "/" + target);
  }
  // One event of each body kind from a simulated cohort, and a clock tick.
  std::map<std::string, v1::Event> by_kind;
  std::vector<v1::Event> all;
  CohortOptions options;
  options.patients = 40;
  options.days = 30;
  const absl::Status s = SimulateCohort(options, [&](const v1::Event& e) {
    by_kind.try_emplace(std::string(EventTypeName(e)), e);
    if (all.size() < 64) all.push_back(e);
    return absl::OkStatus();
  });
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  by_kind["clock_tick"] = MakeClockTick("tend-ticker-seed", absl::FromUnixSeconds(1767225600));
  for (const auto& [kind, e] : by_kind) {
    Write(absl::StrCat(root, "/event_record/", kind), e.SerializeAsString());
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(e, &json).ok()) return 1;
    Write(absl::StrCat(root, "/event_json/", kind), json);
  }
  // Archives: two partitions of a few records each, finished; and the same cut short.
  const std::string archive = root + "/archive/finished";
  v1::ArchiveHeader header;
  header.set_topic("tend.events");
  header.set_partitions(2);
  std::map<int, int64_t> next = {{0, 0}, {1, 0}};
  for (size_t i = 0; i < all.size(); ++i) next[static_cast<int>(i % 2)]++;
  for (int p = 0; p < 2; ++p) {
    header.add_low_offsets(0);
    header.add_high_offsets(next[p]);
  }
  auto writer = ArchiveWriter::Create(archive, header);
  if (!writer.ok()) return 1;
  std::map<int, int64_t> offset;
  for (size_t i = 0; i < all.size(); ++i) {
    v1::ArchiveRecord r;
    r.set_partition(static_cast<int>(i % 2));
    r.set_offset(offset[r.partition()]++);
    r.set_key(all[i].patient_id());
    r.set_value(all[i].SerializeAsString());
    r.set_timestamp_ms(all[i].recorded_at().seconds() * 1000);
    if (!(*writer)->Append(r).ok()) return 1;
  }
  if (!(*writer)->Finish().ok()) return 1;
  std::ifstream in(archive, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Write(root + "/archive/cut-short", bytes.substr(0, bytes.size() * 2 / 3));
  Write(root + "/archive/header-only", bytes.substr(0, 64));
  // A patient folded from the first events above (one patient's), stored as the engine writes it
  // (format 7), with its window unstamped (a format-6 record written back before its first
  // fold), and as a format-6 record: varint32 n, the state, then the bare fingerprints.
  v1::PatientState state;
  AppliedEvents applied;
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  for (const v1::Event& e : all) {
    if (e.patient_id() != all[0].patient_id()) continue;
    if (applied.Fold(storage_format::EventFingerprint(e.event_id()), e.recorded_at().seconds(),
                     DedupeOptions())) {
      projections::Apply(config, e, &state);
    }
  }
  const std::string state_bytes = state.SerializeAsString();
  std::string record;
  storage_format::EncodePatient(state_bytes, applied, &record);
  Write(root + "/patient_record/format-7", record);
  std::vector<AppliedEvents::Entry> unstamped = applied.entries();
  for (AppliedEvents::Entry& e : unstamped) e.hour = kUnknownFoldHour;
  AppliedEvents upgraded;
  upgraded.Assign(unstamped);
  storage_format::EncodePatient(state_bytes, upgraded, &record);
  Write(root + "/patient_record/format-7-unstamped", record);
  std::string v6;
  storage_format::AppendVarint32(static_cast<uint32_t>(state_bytes.size()), &v6);
  v6 += state_bytes;
  for (const AppliedEvents::Entry& e : applied.entries()) {
    for (int b = 0; b < 8; ++b) v6.push_back(static_cast<char>(e.fingerprint >> (8 * b)));
  }
  Write(root + "/patient_record/format-6", v6);
  // Glucose readings as format 8 keeps them (columns) and as format 7 did (a message each, by
  // time then event id): the upgrade's input, whose same-second pair its values order the other
  // way round.
  v1::PatientState with_readings = state;
  v1::GlucoseState legacy;
  using Reading = std::tuple<const char*, int64_t, double>;
  const std::vector<Reading> readings = {
      {"g-1", 1767225600, 8.4}, {"g-2", 1767225600, 6.1}, {"g-3", 1767139200, 7.7}};
  for (const auto& [id, at_s, mmol] : readings) {
    v1::Event e = all[0];
    e.set_event_id(id);
    e.mutable_occurred_at()->set_seconds(at_s);
    v1::CheckIn* check_in = e.mutable_check_in();
    check_in->set_kind(v1::CheckIn::GLUCOSE);
    check_in->mutable_glucose()->set_mmol_per_l(mmol);
    check_in->mutable_glucose()->set_context(v1::GlucoseReading::FASTING);
    projections::Apply(config, e, &with_readings);
  }
  std::vector<Reading> by_time_and_id = readings;
  std::sort(by_time_and_id.begin(), by_time_and_id.end(), [](const Reading& a, const Reading& b) {
    return std::get<1>(a) != std::get<1>(b) ? std::get<1>(a) < std::get<1>(b)
                                            : std::string(std::get<0>(a)) < std::get<0>(b);
  });
  for (const auto& [id, at_s, mmol] : by_time_and_id) {
    v1::FastingReading* r = legacy.add_fasting();
    r->set_event_id(id);
    r->set_at_s(at_s);
    r->set_mmol_per_l(mmol);
  }
  storage_format::EncodePatient(with_readings.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-8-glucose", record);
  *with_readings.mutable_glucose() = legacy;
  storage_format::EncodePatient(with_readings.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-7-glucose", record);
  // Rule memories as format 9 keeps them (a row per rule in columns) and as format 8 did (a
  // message each with its rule's id): the upgrade's input.
  v1::PatientState with_memories = state;
  v1::RulesState legacy_rules;
  struct Memory {
    const char* rule_id;
    int64_t last_fired_s, timer_due_s, absence_anchor_s;
    v1::RuleMemory::Held became;
  };
  const std::vector<Memory> memories = {
      {"welcome", 1767225600, 0, 0, v1::RuleMemory::HELD_UNKNOWN},
      {"inactive-7d", 0, 1767830400, 1767225600, v1::RuleMemory::HELD_UNKNOWN},
      {"streak-7", 0, 0, 0, v1::RuleMemory::HELD_FALSE}};
  for (const Memory& m : memories) {
    v1::RuleMemory* old = legacy_rules.add_rules();
    old->set_rule_id(m.rule_id);
    old->set_last_fired_s(m.last_fired_s);
    old->set_timer_due_s(m.timer_due_s);
    old->set_absence_anchor_s(m.absence_anchor_s);
    old->set_became(m.became);
    v1::RulesState* rules = with_memories.mutable_rules();
    RuleMemoryRef row(rules, AddRuleMemoryRow(rules, RuleFingerprint(m.rule_id)));
    row.set_last_fired_s(m.last_fired_s);
    row.set_timer_due_s(m.timer_due_s);
    row.set_absence_anchor_s(m.absence_anchor_s);
    row.set_became(m.became);
  }
  storage_format::EncodePatient(with_memories.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-9-rules", record);
  *with_memories.mutable_rules() = legacy_rules;
  storage_format::EncodePatient(with_memories.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-8-rules", record);
  // The patient above as format 10 stores it: its marks (first and latest scan, enrollment, ...)
  // by fingerprint, as the fold now sets them; and as format 9 did, each mark with its event's
  // id instead: the upgrade's input.
  storage_format::EncodePatient(state_bytes, applied, &record);
  Write(root + "/patient_record/format-10-marks", record);
  v1::PatientState with_ids = state;
  int named = 0;
  for (v1::EventMark* m : {with_ids.mutable_acquisition()->mutable_first_scan(),
                           with_ids.mutable_acquisition()->mutable_latest_scan(),
                           with_ids.mutable_enrollment()->mutable_latest()}) {
    m->clear_event();
    m->set_event_id("e-seed-" + std::to_string(named++));
  }
  storage_format::EncodePatient(with_ids.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-9-marks", record);
  // Coupons as format 11 keeps them (rows in columns: two outstanding, one redeemed) and as
  // format 10 did (a message per coupon and redemption, by coupon id): the upgrade's input.
  v1::PatientState with_coupons = state;
  v1::CouponState legacy_coupons;
  for (const char* id : {"cp-a", "cp-b-with-a-long-identifier", "cp-c"}) {
    v1::Event e;
    e.set_event_id(std::string("e-") + id);
    e.mutable_occurred_at()->set_seconds(1767225600);
    e.mutable_coupon_issued()->set_coupon_id(id);
    e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(1767830400);
    projections::ApplyCoupons(e, with_coupons.mutable_coupons());
    v1::CouponState::Coupon* c = legacy_coupons.add_outstanding();
    c->set_coupon_id(id);
    c->set_expires_s(1767830400);
    c->mutable_issued()->set_at_s(1767225600);
    c->mutable_issued()->set_event(projections::MarkOf(e.event_id()));
  }
  v1::Event redeemed;
  redeemed.set_event_id("e-redeem");
  redeemed.mutable_occurred_at()->set_seconds(1767312000);
  redeemed.mutable_coupon_redeemed()->set_coupon_id("cp-c");
  projections::ApplyCoupons(redeemed, with_coupons.mutable_coupons());
  legacy_coupons.mutable_outstanding()->RemoveLast();
  v1::CouponState::Redemption* r = legacy_coupons.add_redeemed();
  r->set_coupon_id("cp-c");
  r->mutable_mark()->set_at_s(1767312000);
  r->mutable_mark()->set_event(projections::MarkOf("e-redeem"));
  storage_format::EncodePatient(with_coupons.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-11-coupons", record);
  *with_coupons.mutable_coupons() = legacy_coupons;
  storage_format::EncodePatient(with_coupons.SerializeAsString(), applied, &record);
  Write(root + "/patient_record/format-10-coupons", record);
  std::fprintf(stderr, "seeds written under %s\n", root.c_str());
  return 0;
}
