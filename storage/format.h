// ON-DISK FORMAT of the tend state directory (RocksDB). Everything in this header is persisted:
// changing a name, a prefix or an encoding changes what existing databases mean. Bump
// kStorageFormatVersion with any change; the engine refuses a directory of another version.
//
// Column families (kColumnFamilies):
//   meta    "format_version"            -> decimal kStorageFormatVersion
//           "topic"                     -> name of the events topic this state was folded from
//           "topic_partitions"          -> decimal: the events topic's partition count when an
//                                          engine first folded it here (optional key: absent in
//                                          directories an older engine or an archive's replay
//                                          made; ignored by older readers). A patient's partition
//                                          is its key's hash modulo the count: another count
//                                          splits patients.
//           "projection_versions"       -> tend.v1.ProjectionVersions the state was folded by
//           "engine_config"             -> YAML (schema tend.v1.EngineConfig, every key spelled
//                                          out) the engine last started with; readers default to it
//           "index_parameters"          -> text: what the `index` keys were built with (absent
//                                          while the index is being rebuilt)
//           "checkpoint/" + BE32(p)     -> tend.v1.PartitionCheckpoint (next offset of partition p)
//           "changelog/" + BE32(p)      -> tend.v1.ChangelogPosition: where in partition p of the
//                                          state changelog (storage/changelog.h) this directory's
//                                          copy of the partition stands, written in the same batch
//                                          as the checkpoint it reflects (optional key: absent
//                                          without a changelog; ignored by readers)
//           "folded_until"              -> decimal unix milliseconds: the directory was made by
//                                          `tend replay --until` from the records timestamped up
//                                          to then (optional key, since 2026-12-06: absent in
//                                          every other directory; older engines ignore it). A
//                                          LIVE engine refuses such a directory.
//           "manifest_sealed"           -> "1" once an engine sealed the directory's MANIFEST
//                                          (storage/manifest_seal.h): from then on a missing seal
//                                          file is damage, not an older directory (optional key,
//                                          read by format 6 readers and ignored by older ones)
//   state   BE32(p) + patient_id        -> patient record (EncodePatient), format 7 to 12 alike
//                                          (their states differ: kStorageFormatVersion): a 0 byte,
//                                          varint32 n, n bytes of tend.v1.PatientState, varint32
//                                          k, then the dedupe window (storage/applied_events.h):
//                                          k EventFingerprint()s, ascending, 8 bytes little-endian
//                                          each, then the k hours (partition clock / 3600) they
//                                          were folded at, 4 bytes little-endian each. Format 6
//                                          (still read): varint32 n, the state, then the sorted
//                                          fingerprints of every event folded, with no hours
//   outbox  BE32(p) + BE64(not_before unix seconds) + command_id
//                                       -> tend.v1.ReminderCommand decided and not yet acknowledged
//                                          by the sink (the engine's written by decided_values.h:
//                                          protobuf's bytes; written with the state that decided
//                                          it; deleted by the dispatcher on acknowledgement). Keys
//                                          of a partition sort by when they may be sent, so the
//                                          dispatcher reads only the due ones: commands deferred
//                                          to the end of quiet hours and the tombstones of
//                                          delivered ones lie outside its reads
//   decisions patient_id + "\0" + BE64(at seconds) + BE64(record offset) + BE32(index in record)
//                                       -> tend.v1.Decision (fired, deferred, suppressed), for
//                                          Explain (the engine's written by decided_values.h:
//                                          protobuf's bytes); the dispatcher's DROPPED decisions
//                                          use offset 2^63-1 and the low 32 bits of
//                                          EventFingerprint(command id) as index
//   timers  BE32(p) + BE64(due unix seconds) + patient_id + "\0" + rule_id -> "" (empty)
//                                          since format 12, one key per patient with rule_id
//                                          empty: its alarm, at the earliest timer_due_s of its
//                                          rule memories (rules/memory.h EarliestTimer), moved in
//                                          the batch that moves that earliest timer; when it falls
//                                          due, every rule timer of the patient due that second
//                                          fires (rules/decide.h DecideOnTimersDue). A key with a
//                                          rule_id is format 11's (one per armed rule timer): it
//                                          fires the same way and goes. The engine holds a window
//                                          of a partition's keys in memory and fires them by due
//                                          time, then patient, as the partition clock passes
//   index   BE32(p) + kind + value + patient_id -> "" (empty): secondary indexes of the patients,
//                                          rewritten in the same batch as the patient's state.
//                                          Kinds (IndexKind): 'P' program_id "\0", 'S' current
//                                          staff_id "\0", 'H' hard-churned (no value), 'A'
//                                          "0"|"1" "\0" (activated with every event folded),
//                                          'L' BE64(start of the UTC day of the last
//                                          patient-initiated activity, unix s; first seen
//                                          without any), 'F' (no value: activity in a slot after
//                                          the patient's latest recorded_at, or activated after
//                                          it: device clocks ahead), 'R' BE16(band, per mille) +
//                                          BE64(start of the local day the churn risk reaches
//                                          the band, unix s) + the active-day summary (BE32
//                                          active days, BE32 first and BE32 last active local
//                                          day, each as days since 1970-01-01 + 2^31) for
//                                          each band of kChurnRiskBandsPermille (patients with
//                                          two or more active days). Every patient has 'A' and
//                                          'L' keys.
//                                          The layout and what the 'R' keys were computed with
//                                          are the meta key index_parameters
//                                          (index/patient_index.h PatientIndexParameters); on a
//                                          mismatch the engine
//                                          rebuilds the whole column family before it folds.
//                                          Query/ListPatients walks them.
// One value per patient keeps a commit at one insert per dirty patient and a cache miss at one
// read; readers that want only the state stop after the first n bytes. BE32 is a big-endian uint32
// so that keys of one partition sort together (partition-scoped state, docs/design.md,
// "Partition-scoped state": a partition's keys can be dropped or moved as one range). Patient
// records and checkpoints of one commit are written in ONE WriteBatch.
//
// Beside RocksDB's files the directory holds one file of tend's own, `tend-manifest-seal`
// (version 1, ASCII; storage/manifest_seal.h): the MANIFEST's name and length when tend last saw
// it whole, checked before every open. It is versioned on its own first line, not by
// kStorageFormatVersion; a directory without one is accepted and sealed at the engine's open.
#ifndef TEND_STORAGE_FORMAT_H_
#define TEND_STORAGE_FORMAT_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"
#include "base/hash.h"
#include "storage/applied_events.h"

namespace tend::storage_format {

// 2: outbox and decisions. 3: timers. 4: index. 5: index kinds 'A', 'F' and 'R', meta
// index_parameters. 6: outbox keys carry not_before (a 4 or 5 is upgraded in place: see
// Storage::CheckFormatVersion). 7: patient records hold a bounded dedupe window with fold hours
// (a 6 is upgraded in place: its records are read as they are and written as 7 when their patient
// is next folded; a 6 binary refuses a 7 directory, so none reads a record it cannot parse).
// 8: the state's fasting glucose readings are two parallel columns (GlucoseState.fasting_at_s,
// fasting_mmol_per_l) instead of a message each (a 7 is upgraded in place the same way: a 7
// record's readings move into the columns when it is parsed, projections::UpgradeGlucose, and it
// is written as an 8 with its patient's next commit; a 7 binary refuses an 8 directory, whose
// states it would read without their readings). 9: the rules' memories of a patient are six
// parallel columns (RulesState.memory_*, a row per rule named by its RuleFingerprint,
// rules/memory.h) instead of a message and a rule-id string each (an 8 is upgraded in place the
// same way, UpgradeRuleMemories; an 8 binary refuses a 9 directory, whose states it would read
// without their memories). 10: an event mark (EventMark: which event set a patient's first scan,
// latest scan, enrollment, profile, consent per purpose, contact removal, coupon issue and
// redemption) names its event by fingerprint (EventMark.event, projections/marks.h) instead of
// its id (a 9 is upgraded in place the same way, projections::UpgradeEventMarks; a 9 binary
// refuses a 10 directory, whose marks it would read as unset). 11: a patient's coupons and
// redemptions are parallel columns (CouponState.outstanding_* and redeemed_*, a redemption named
// by its coupon's fingerprint, projections::CouponOf) instead of two or three messages each, and
// a coupon keeps only what a view reads (id, expiry, the mark) (a 10 is upgraded in place
// the same way, projections::UpgradeCoupons; a 10 binary refuses an 11 directory, whose states it
// would read without their coupons). 12: one timer key per patient, its alarm (rule_id empty),
// instead of one per armed rule timer (an 11 is upgraded in place by its version only: its keys
// of one rule each fire the patient's timers due with them, and the alarm keys replace them as
// patients' earliest timers move; an 11 binary refuses a 12 directory, whose alarms it would
// drop as timers of a removed rule).
inline constexpr int kStorageFormatVersion = 12;

inline constexpr absl::string_view kMetaCf = "meta";
inline constexpr absl::string_view kStateCf = "state";
inline constexpr absl::string_view kOutboxCf = "outbox";
inline constexpr absl::string_view kDecisionsCf = "decisions";
inline constexpr absl::string_view kTimersCf = "timers";
inline constexpr absl::string_view kIndexCf = "index";
inline constexpr std::array<absl::string_view, 6> kColumnFamilies = {
    kMetaCf, kStateCf, kOutboxCf, kDecisionsCf, kTimersCf, kIndexCf};

// The secondary indexes of the `index` column family.
enum class IndexKind : char {
  kProgram = 'P',
  kStaff = 'S',
  kHardChurned = 'H',
  kLastActivity = 'L',
  kActivated = 'A',
  kChurnRisk = 'R',
  kAhead = 'F',
};

// The churn-risk thresholds with 'R' index keys, per mille, ascending. ListPatients answers
// min_churn_risk X from the largest band <= X, and rules out most candidates between the band
// and X from the summary in the key. Part of index_parameters: a change rebuilds the index.
// (Two bands: each costs a delete and a put per patient and new active day.)
inline constexpr std::array<int, 2> kChurnRiskBandsPermille = {300, 700};

inline constexpr absl::string_view kFormatVersionKey = "format_version";
inline constexpr absl::string_view kTopicKey = "topic";
inline constexpr absl::string_view kTopicPartitionsKey = "topic_partitions";
inline constexpr absl::string_view kProjectionVersionsKey = "projection_versions";
inline constexpr absl::string_view kEngineConfigKey = "engine_config";
inline constexpr absl::string_view kIndexParametersKey = "index_parameters";
inline constexpr absl::string_view kCheckpointPrefix = "checkpoint/";
inline constexpr absl::string_view kManifestSealedKey = "manifest_sealed";
inline constexpr absl::string_view kFoldedUntilKey = "folded_until";
inline constexpr absl::string_view kChangelogPositionPrefix = "changelog/";

inline void AppendBe32(uint32_t v, std::string* out) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}

inline uint32_t ReadBe32(absl::string_view s) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(s[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[3]));
}

inline uint64_t ReadBe64(absl::string_view s) {
  return (static_cast<uint64_t>(ReadBe32(s)) << 32) | ReadBe32(s.substr(4));
}

inline std::string CheckpointKey(int32_t partition) {
  std::string k(kCheckpointPrefix.data(), kCheckpointPrefix.size());
  AppendBe32(static_cast<uint32_t>(partition), &k);
  return k;
}

inline std::string ChangelogPositionKey(int32_t partition) {
  std::string k(kChangelogPositionPrefix.data(), kChangelogPositionPrefix.size());
  AppendBe32(static_cast<uint32_t>(partition), &k);
  return k;
}

inline std::string PartitionPrefix(int32_t partition) {
  std::string k;
  AppendBe32(static_cast<uint32_t>(partition), &k);
  return k;
}

// Writes the key into `*out` (reusing its buffer).
inline void SetStateKey(int32_t partition, absl::string_view patient_id, std::string* out) {
  out->clear();
  AppendBe32(static_cast<uint32_t>(partition), out);
  out->append(patient_id.data(), patient_id.size());
}

inline std::string StateKey(int32_t partition, absl::string_view patient_id) {
  std::string k;
  SetStateKey(partition, patient_id, &k);
  return k;
}

inline void AppendBe64(uint64_t v, std::string* out) {
  AppendBe32(static_cast<uint32_t>(v >> 32), out);
  AppendBe32(static_cast<uint32_t>(v), out);
}

// Appends the key to `*out` (the Append* builders let a caller build many keys in one buffer).
inline void AppendOutboxKey(int32_t partition, int64_t not_before_s, absl::string_view command_id,
                            std::string* out) {
  AppendBe32(static_cast<uint32_t>(partition), out);
  AppendBe64(static_cast<uint64_t>(std::max<int64_t>(0, not_before_s)), out);
  out->append(command_id.data(), command_id.size());
}

// The first outbox key of `partition` whose command may be sent at `not_before_s` or later.
inline std::string OutboxFrom(int32_t partition, int64_t not_before_s) {
  std::string k;
  AppendOutboxKey(partition, not_before_s, "", &k);
  return k;
}
inline std::string OutboxKey(int32_t partition, int64_t not_before_s,
                             absl::string_view command_id) {
  std::string k;
  AppendOutboxKey(partition, not_before_s, command_id, &k);
  return k;
}

// Format version 5 and older (upgraded in place to 6).
inline std::string OutboxKeyV5(int32_t partition, absl::string_view command_id) {
  std::string k;
  AppendBe32(static_cast<uint32_t>(partition), &k);
  k.append(command_id.data(), command_id.size());
  return k;
}

// Decisions of one patient sort together, by time, then by the deciding record's offset.
// `extra`: bytes the caller appends, reserved up front.
inline std::string DecisionPrefix(absl::string_view patient_id, size_t extra = 0) {
  std::string k;
  k.reserve(patient_id.size() + 1 + extra);
  k.append(patient_id.data(), patient_id.size());
  k.push_back('\0');
  return k;
}
inline void AppendDecisionKey(absl::string_view patient_id, int64_t at_s, int64_t offset,
                              uint32_t index, std::string* out) {
  out->append(patient_id.data(), patient_id.size());
  out->push_back('\0');
  AppendBe64(static_cast<uint64_t>(at_s), out);
  AppendBe64(static_cast<uint64_t>(offset), out);
  AppendBe32(index, out);
}
inline std::string DecisionKey(absl::string_view patient_id, int64_t at_s, int64_t offset,
                               uint32_t index) {
  std::string k;
  k.reserve(patient_id.size() + 21);
  AppendDecisionKey(patient_id, at_s, offset, index, &k);
  return k;
}

inline void AppendTimerKey(int32_t partition, int64_t due_s, absl::string_view patient_id,
                           absl::string_view rule_id, std::string* out) {
  AppendBe32(static_cast<uint32_t>(partition), out);
  AppendBe64(static_cast<uint64_t>(due_s), out);
  out->append(patient_id.data(), patient_id.size());
  out->push_back('\0');
  out->append(rule_id.data(), rule_id.size());
}
inline std::string TimerKey(int32_t partition, int64_t due_s, absl::string_view patient_id,
                            absl::string_view rule_id) {
  std::string k;
  k.reserve(12 + patient_id.size() + 1 + rule_id.size());
  AppendTimerKey(partition, due_s, patient_id, rule_id, &k);
  return k;
}

// The decoders of the keys above; each returns false for a key too short or malformed to be one.
//
// An outbox key's partition and not_before (unix seconds).
inline bool ParseOutboxKey(absl::string_view key, int32_t* partition, int64_t* not_before_s) {
  if (key.size() < 12) return false;
  *partition = static_cast<int32_t>(ReadBe32(key));
  *not_before_s = static_cast<int64_t>(ReadBe64(key.substr(4)));
  return true;
}

// A decision key's time (unix seconds).
inline bool ParseDecisionKeyTime(absl::string_view key, int64_t* at_s) {
  const size_t nul = key.find('\0');
  if (nul == absl::string_view::npos || key.size() < nul + 1 + 8) return false;
  *at_s = static_cast<int64_t>(ReadBe64(key.substr(nul + 1)));
  return true;
}

// A timer key's due time, patient and rule (views into `key`).
inline bool ParseTimerKey(absl::string_view key, int64_t* due_s, absl::string_view* patient_id,
                          absl::string_view* rule_id) {
  const size_t nul = key.size() < 12 ? absl::string_view::npos : key.find('\0', 12);
  if (nul == absl::string_view::npos) return false;
  *due_s = static_cast<int64_t>(ReadBe64(key.substr(4)));
  *patient_id = key.substr(12, nul - 12);
  *rule_id = key.substr(nul + 1);
  return true;
}

// The 64-bit fingerprint of an event id, for the per-patient applied-event set: base/hash.h
// Fingerprint64 (FNV-1a 64 + splitmix64 finalizer). Stable forever: it is on disk. Two distinct
// ids of one patient collide with probability about n^2 / 2^65 for n events (1e-12 at
// n = 10,000); a collision would drop the later event as a duplicate.
inline uint64_t EventFingerprint(absl::string_view event_id) { return Fingerprint64(event_id); }

inline void AppendVarint32(uint32_t n, std::string* out) {
  while (n >= 0x80) {
    out->push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out->push_back(static_cast<char>(n));
}

// Reads a varint32 at `*i` of `s`, moving `*i` past it; false when it is cut short or too long.
inline bool ReadVarint32(absl::string_view s, size_t* i, uint32_t* n) {
  *n = 0;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (*i >= s.size()) return false;
    const uint8_t b = static_cast<uint8_t>(s[(*i)++]);
    if (shift == 28 && b > 0x0f) return false;
    *n |= static_cast<uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// The first byte of a format-7 patient record. A format-6 record starts with its state's
// length, a varint that is never 0 (a state has a patient id).
inline constexpr char kPatientRecordV7 = '\0';

// Writes the patient record (format 7) into `out`: the byte kPatientRecordV7, varint32 n, n
// bytes written by `write_state(char*)`, varint32 k, the dedupe window's k fingerprints (8 bytes
// little-endian each, ascending), then their k fold hours (4 bytes little-endian each, in the
// same order). One buffer, no intermediate copy of the state.
template <typename WriteState>
inline void EncodePatientWith(uint32_t state_size, WriteState write_state,
                              const AppliedEvents& applied, std::string* out) {
  out->clear();
  out->push_back(kPatientRecordV7);
  AppendVarint32(state_size, out);
  size_t at = out->size();
  out->resize(at + state_size);
  write_state(out->data() + at);
  const std::vector<AppliedEvents::Entry>& entries = applied.entries();
  AppendVarint32(static_cast<uint32_t>(entries.size()), out);
  at = out->size();
  out->resize(at + entries.size() * 12);
  char* p = out->data() + at;
  for (const AppliedEvents::Entry& e : entries) {
    for (int i = 0; i < 8; ++i) *p++ = static_cast<char>(e.fingerprint >> (8 * i));
  }
  for (const AppliedEvents::Entry& e : entries) {
    for (int i = 0; i < 4; ++i) *p++ = static_cast<char>(e.hour >> (8 * i));
  }
}

inline void EncodePatient(absl::string_view state_bytes, const AppliedEvents& applied,
                          std::string* out) {
  EncodePatientWith(
      static_cast<uint32_t>(state_bytes.size()),
      [&](char* dst) { std::copy(state_bytes.begin(), state_bytes.end(), dst); }, applied, out);
}

// Splits a patient record (format 7, or 6: varint32 n, n bytes of state, then 8-byte
// fingerprints, ascending, with no time: they get kUnknownFoldHour) into the state bytes and
// (when `applied` is not null) the dedupe window. false when `record` is malformed: cut short,
// too long, fingerprints not strictly ascending, or some but not all hours kUnknownFoldHour
// (checked only when `applied` is not null).
inline bool DecodePatient(absl::string_view record, absl::string_view* state_bytes,
                          AppliedEvents* applied) {
  const bool v7 = !record.empty() && record[0] == kPatientRecordV7;
  size_t i = v7 ? 1 : 0;
  uint32_t n = 0;
  if (!ReadVarint32(record, &i, &n) || record.size() - i < n) return false;
  *state_bytes = record.substr(i, n);
  i += n;
  size_t k = 0;
  if (v7) {
    uint32_t count = 0;
    if (!ReadVarint32(record, &i, &count)) return false;
    k = count;
    if ((record.size() - i) / 12 < k || record.size() - i != k * 12) return false;
  } else {
    if ((record.size() - i) % 8 != 0) return false;
    k = (record.size() - i) / 8;
  }
  if (applied == nullptr) return true;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(record.data() + i);
  std::vector<AppliedEvents::Entry> entries(k, AppliedEvents::Entry{0, kUnknownFoldHour});
  for (size_t j = 0; j < k; ++j) {
    uint64_t f = 0;
    for (int b = 0; b < 8; ++b) f |= static_cast<uint64_t>(*p++) << (8 * b);
    if (j > 0 && entries[j - 1].fingerprint >= f) return false;
    entries[j].fingerprint = f;
  }
  if (v7) {
    size_t unstamped = 0;
    for (AppliedEvents::Entry& e : entries) {
      uint32_t h = 0;
      for (int b = 0; b < 4; ++b) h |= static_cast<uint32_t>(*p++) << (8 * b);
      unstamped += h == kUnknownFoldHour ? 1 : 0;
      e.hour = h;
    }
    // Fingerprints of a format-6 record written back before their first fold stay unstamped,
    // all of them: a mix is damage.
    if (unstamped != 0 && unstamped != k) return false;
  }
  applied->Assign(std::move(entries));
  return true;
}

// BE32(p) + kind: where a partition's index of that kind starts.
// `extra`: bytes the caller appends after the prefix, reserved up front (keys are built by the
// hundred thousand per commit: one allocation each, not one per growth step).
inline std::string IndexPrefix(int32_t partition, IndexKind kind, size_t extra = 0) {
  std::string k;
  k.reserve(5 + extra);
  AppendBe32(static_cast<uint32_t>(partition), &k);
  k.push_back(static_cast<char>(kind));
  return k;
}
// An index key for a string value (program, staff): prefix + value + "\0" + patient.
inline std::string IndexKey(int32_t partition, IndexKind kind, absl::string_view value,
                            absl::string_view patient_id) {
  std::string k = IndexPrefix(partition, kind, value.size() + 1 + patient_id.size());
  k.append(value.data(), value.size());
  k.push_back('\0');
  k.append(patient_id.data(), patient_id.size());
  return k;
}
// An index key for a time (unix seconds, non-negative) or no value (time < 0): prefix +
// [BE64(time)] + patient.
inline std::string IndexTimeKey(int32_t partition, IndexKind kind, int64_t time_s,
                                absl::string_view patient_id) {
  std::string k = IndexPrefix(partition, kind, 8 + patient_id.size());
  if (time_s >= 0) AppendBe64(static_cast<uint64_t>(time_s), &k);
  k.append(patient_id.data(), patient_id.size());
  return k;
}

// The active-day summary in a churn-risk index key: BE32 days, BE32 first and last day (days
// since 1970-01-01, + 2^31).
struct RiskKeyDays {
  uint32_t days = 0;
  int64_t first_day = 0, last_day = 0;  // days since 1970-01-01
};
inline constexpr size_t kRiskKeyFixedBytes = 5 + 2 + 8 + 12;  // before the patient id

// A churn-risk index key: prefix + BE16(band per mille) + BE64(time) + summary + patient.
inline std::string IndexRiskKey(int32_t partition, int band_permille, int64_t time_s,
                                const RiskKeyDays& days, absl::string_view patient_id) {
  std::string k =
      IndexPrefix(partition, IndexKind::kChurnRisk, kRiskKeyFixedBytes - 5 + patient_id.size());
  k.push_back(static_cast<char>(band_permille >> 8));
  k.push_back(static_cast<char>(band_permille & 0xff));
  AppendBe64(static_cast<uint64_t>(std::max<int64_t>(0, time_s)), &k);
  AppendBe32(days.days, &k);
  AppendBe32(static_cast<uint32_t>(days.first_day + (int64_t{1} << 31)), &k);
  AppendBe32(static_cast<uint32_t>(days.last_day + (int64_t{1} << 31)), &k);
  k.append(patient_id.data(), patient_id.size());
  return k;
}

// The summary in a churn-risk index key; false when the key is too short to be one.
inline bool ParseRiskKeyDays(absl::string_view key, RiskKeyDays* days) {
  if (key.size() < kRiskKeyFixedBytes) return false;
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(key[at + i]);
    return v;
  };
  days->days = be32(15);
  days->first_day = static_cast<int64_t>(be32(19)) - (int64_t{1} << 31);
  days->last_day = static_cast<int64_t>(be32(23)) - (int64_t{1} << 31);
  return true;
}

// The patient id at the end of an `index` key of `kind` (IndexKey, IndexTimeKey, IndexRiskKey);
// empty when the key is too short to hold one.
inline absl::string_view IndexKeyPatient(absl::string_view key, IndexKind kind) {
  if (key.size() < 5) return absl::string_view();
  key.remove_prefix(5);  // partition and kind
  switch (kind) {
    case IndexKind::kProgram:
    case IndexKind::kStaff:
    case IndexKind::kActivated: {
      // The last NUL: a value is an event's free text and may hold one, a patient id never does.
      const size_t nul = key.rfind('\0');
      return nul == absl::string_view::npos ? absl::string_view() : key.substr(nul + 1);
    }
    case IndexKind::kLastActivity:
      return key.size() >= 8 ? key.substr(8) : absl::string_view();
    case IndexKind::kChurnRisk:
      return key.size() >= kRiskKeyFixedBytes - 5 ? key.substr(kRiskKeyFixedBytes - 5)
                                                  : absl::string_view();
    default:
      return key;
  }
}

}  // namespace tend::storage_format

#endif  // TEND_STORAGE_FORMAT_H_
