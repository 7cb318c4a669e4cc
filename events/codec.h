// Decoding and validation of tend.v1.Event records: the gate between the log and the fold.
// A record that fails here goes to the dead-letter topic with the returned message as reason.
// All functions are thread-safe (no shared state).
#ifndef TEND_EVENTS_CODEC_H_
#define TEND_EVENTS_CODEC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tend/v1/events.pb.h"

namespace tend {

// The dedupe window of each patient (storage/applied_events.h).
struct DedupeOptions {
  // How long, in partition-clock time, a folded event's copies are recognised. Default 30 days:
  // Kafka producer retries take seconds, clients' retries minutes to hours, a source re-sending
  // after an outage days.
  int64_t window_s = int64_t{30} * 86400;
  // At most this many fingerprints per patient: past it those folded in the earliest hour go
  // (within one hour the smaller fingerprints first, never the event just folded). Bounds a
  // record against a flood.
  size_t max_events = 1024;
};

struct ValidationOptions {
  // occurred_at may run ahead of recorded_at by at most this (device clock skew). Further ahead is
  // invalid input (docs/design.md, "Time is in the log"): a phone set to 2031 must not reach the
  // fold.
  absl::Duration max_clock_skew = absl::Hours(1);
  // Require recorded_at (the ingest time). Ingest sets it before validating, so it is always
  // required in the log.
  bool require_recorded_at = true;
  // recorded_at (ingest time) may run ahead of the Kafka record's timestamp (the broker's time
  // with message.timestamp.type=LogAppendTime, else the producer's) by at most this. Further
  // ahead, the record is dead-lettered: no record moves a partition clock past the log's own
  // time plus this (docs/design.md, "Time you can trust").
  absl::Duration max_recorded_ahead = absl::Minutes(5);
  // The tickers whose ClockTicks may move a partition clock (ClockTick.ticker); a name ending
  // in '*' matches every name that starts with what precedes it. Other ticks are dead-lettered.
  std::vector<std::string> tickers = {"tend-ticker-*"};
  // How long a folded event's copies are recognised and dropped (storage/applied_events.h;
  // config log.dedupe_window_days and log.dedupe_max_events). Not a check of one record, but
  // what the engine accepts from the log all the same: a copy later than this is folded again.
  DedupeOptions dedupe;
};

// The value of the `event_type` Kafka header and the field name in PatientState.events_by_type:
// "scan", "message", "check_in", "purchase", "enrollment", "contact_removed",
// "consent_changed" ("clock_tick" for ticks); "" when no body is set. Part of the on-wire format: never rename.
absl::string_view EventTypeName(const v1::Event& event);

// A record header, name and value as views (kafka/kafka.h produces them as Kafka headers).
struct RecordHeader {
  absl::string_view name;
  absl::string_view value;
};

// Kafka headers of an event record: event_id and event_type (views into `event`).
std::array<RecordHeader, 2> EventHeaders(const v1::Event& event);

// Bounds on an event (documented in proto/tend/v1/events.proto), so that no record can make a
// patient's state or a batch grow without limit.
inline constexpr size_t kMaxEventBytes = 32 << 10;  // a serialized Event
inline constexpr size_t kMaxTextBytes = 256;        // each free-text field (ids: 128)
inline constexpr int kMaxPurchaseItems = 100;
// Amounts (an order's total, an item's unit price) in minor units: 10^15, so that the sum of
// 9,000 of them still fits a patient's int64 spend (two orders of INT64_MAX once summed to -2).
inline constexpr int64_t kMaxAmountMinor = 1'000'000'000'000'000;
inline constexpr int kMaxQuantity = 1'000'000;  // per item
inline constexpr int kMaxDaysSupply = 3650;     // per item: ten years
// A check-in's values (medically generous: they refuse what no device or person reports, such
// as a pulse of -5 or a dose of NaN, and leave plausibility to the rules).
inline constexpr int kMaxPulseBpm = 400;
inline constexpr double kMaxDoseMg = 100'000;  // one dose: 100 g
inline constexpr int kMaxTrainingMinutes = 1440;
inline constexpr int kMaxKeywords = 32;             // per message
// Three capital letters, as ISO 4217's codes are: spends are summed per code, byte for byte, so
// "cny" or "\n,\"" would each make a currency of their own. Events and the config's
// rfm.currency both hold to it.
bool IsCurrencyCode(absl::string_view code);
inline constexpr size_t kMaxKeywordBytes = 64;

// Parses `bytes` into `*out` (cleared first). kInvalidArgument when it is larger than
// kMaxEventBytes or not an Event.
absl::Status DecodeEvent(absl::string_view bytes, v1::Event* out);

// The JSON form of one event, as `tend produce` reads it (one per line: the proto3 JSON mapping
// of tend.v1.Event, unknown fields refused). A line longer than kMaxEventJsonBytes is refused
// before it is parsed.
inline constexpr size_t kMaxEventJsonBytes = 128 << 10;
absl::Status ParseEventJson(absl::string_view line, v1::Event* out);

// Checks what the engine relies on; the error names the field and what is allowed, e.g.
// "patient_id: must be 1-128 characters of [A-Za-z0-9._:-], got \"a b\"".
absl::Status ValidateEvent(const v1::Event& event, const ValidationOptions& options = {});

// Checks a ClockTick record: an event_id, recorded_at (the ticker's time), no patient_id, and a
// ticker that options.tickers names.
absl::Status ValidateClockTick(const v1::Event& event, const ValidationOptions& options = {});

// Checks that the event's recorded_at is at most options.max_recorded_ahead ahead of
// `record_timestamp_ms`, the timestamp of the Kafka record carrying it (-1: none, refused).
absl::Status CheckRecordedAt(const v1::Event& event, int64_t record_timestamp_ms,
                             const ValidationOptions& options);

// Checks that the Kafka record's timestamp is at most options.max_recorded_ahead ahead of `now`,
// the reading engine's clock. Topics keep CreateTime (the producer's clock), so without this a
// producer that sets both the timestamp and recorded_at in 2099 would move the partition clock
// there. A record refused now may pass a replay run after its time; one accepted never fails
// later (docs/design.md, "Time you can trust").
absl::Status CheckRecordTimestamp(int64_t record_timestamp_ms, absl::Time now,
                                  const ValidationOptions& options);

// True when `name` is one of `patterns` (a pattern ending in '*' matches by prefix).
bool IsTrustedTicker(absl::string_view name, const std::vector<std::string>& patterns);

// True when `id` is 1-128 characters of [A-Za-z0-9._:-] (event ids and patient ids).
bool IsValidId(absl::string_view id);
// True when `c` is one of the characters an id may hold: [A-Za-z0-9._:-].
bool IsIdChar(char c);
// kInvalidArgument naming `field` unless IsValidId(id); the message does not repeat the id (for
// request fields: Query's patient_id).
absl::Status CheckIdArgument(absl::string_view field, absl::string_view id);
// kInvalidArgument naming `field` unless `value` is 1-kMaxTextBytes bytes: a value an event's
// free-text field may hold (program_id, staff_id), as a filter or a rule's target. The message
// does not repeat the value.
absl::Status CheckTextArgument(absl::string_view field, absl::string_view value);

// The days a birth month (1-12) can have: a leap year's (February 29 is a birthday).
inline int BirthDaysInMonth(int month) {
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDays[month - 1];
}

// The earliest instant accepted as an event time; anything before is taken as "not set".
absl::Time MinEventTime();

}  // namespace tend

#endif  // TEND_EVENTS_CODEC_H_
