#include "tools/dump_format.h"

#include <google/protobuf/reflection.h>
#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <map>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/printable.h"
#include "base/time.h"
#include "rules/rules.h"

namespace tend {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// The data dictionary: what each column means. A column without an entry fails the build's
// tests (tests/tools/dump_test.cc), so the dictionary cannot fall behind the schema.
const std::map<std::string, std::string>& Descriptions() {
  static const auto* d = new std::map<std::string, std::string>{
      {"patient_id", "Pseudonymous patient id (the Kafka record key)."},
      {"as_of", "The instant the metrics are computed at: the partition clock (latest recorded_at folded in the patient's partition) unless --as-of."},
      {"time_zone", "The patient's calendar: the time zone of the latest enrollment, else the configured default."},
      {"unique_events", "Events folded for the patient (duplicates by event_id not counted)."},
      {"events_by_type.scan", "Scan events (QR code scans)."},
      {"events_by_type.message", "Chat messages, both directions."},
      {"events_by_type.check_in", "Check-ins (measurements, medication, training, diet)."},
      {"events_by_type.purchase", "Purchases."},
      {"events_by_type.enrollment", "Programme enrollments."},
      {"events_by_type.contact_removed", "Times the patient removed the staff contact."},
      {"events_by_type.consent_changed", "Consent changes."},
      {"events_by_type.coupon_issued", "Coupons issued to the patient (columns version 2)."},
      {"events_by_type.coupon_redeemed", "Coupons redeemed (columns version 2)."},
      {"events_by_type.profile_updated", "Profile updates (the birthday; columns version 2)."},
      {"acquisition.first_seen_at", "Earliest occurred_at of any event of the patient."},
      {"acquisition.first_channel_id", "Channel of the first scan (acquisition channel)."},
      {"acquisition.first_staff_id", "Staff member of the first scan."},
      {"acquisition.current_staff_id", "Staff member of the latest scan: the assigned health manager."},
      {"acquisition.scans", "Number of scans."},
      {"activation.patient_messages", "Messages the patient sent (patient to staff)."},
      {"activation.activated", "The patient sent the configured number of messages (activation.messages_required, default 3), within the window when one is set."},
      {"activation.activated_at", "occurred_at of the activating message; empty when not activated."},
      {"activation.hours_to_activation", "Hours from first seen to activation; 0 when not activated."},
      {"adherence.check_in_days", "Local calendar days with at least one check-in."},
      {"adherence.check_in_days_by_kind", "check_in_days per check-in kind, as KIND=days pairs."},
      {"adherence.current_streak", "Consecutive local days with a check-in up to the as-of day (today is not a miss until local midnight)."},
      {"adherence.longest_streak", "Longest such run ever."},
      {"adherence.rate_7d", "Share of the last 7 local days with a check-in (clipped to the programme start)."},
      {"adherence.rate_28d", "Share of the last 28 local days with a check-in (clipped to the programme start)."},
      {"adherence.rate_since_enrollment", "Share of local days since enrollment with a check-in."},
      {"adherence.weekly_rate", "Share of ISO weeks since enrollment with a check-in: the weekly check-in rate operators quote."},
      {"adherence.pdc", "Proportion of Days Covered by medication (Pharmacy Quality Alliance), all ingredients; 0 without fills."},
      {"adherence.pdc_by_ingredient", "PDC per active ingredient, as ingredient=pdc pairs."},
      {"adherence.pdc_adherent", "pdc at or above the configured threshold (0.80)."},
      {"adherence.pdc_days_in_period", "Days in the PDC measurement period (index date to the period end)."},
      {"adherence.pdc_days_covered", "Days in the period covered by a fill."},
      {"adherence.checked_in_today", "A check-in on the as-of local day."},
      {"churn.stage", "Lifecycle stage: NEW, ACTIVE, SILENT, LOST or HARD_CHURNED (DOMAIN.md defaults: new 0-7 days, silent 31-90, lost beyond)."},
      {"churn.days_since_last_activity", "Local days since the last patient-initiated event."},
      {"churn.x", "BG/NBD frequency: active days - 1 (Fader, Hardie & Lee 2005)."},
      {"churn.t_x", "BG/NBD recency: first to last active day, in the configured time unit."},
      {"churn.t", "BG/NBD age T: first active day to the as-of day, in the configured time unit."},
      {"churn.p_alive", "BG/NBD probability that the patient is still engaged."},
      {"churn.churn_risk", "1 - p_alive."},
      {"churn.expected_active_periods", "BG/NBD expected active periods in the next configured horizon."},
      {"churn.rfm_recency", "RFM recency score 1-5 (recent = 5)."},
      {"churn.rfm_frequency", "RFM frequency score 1-5 (purchases)."},
      {"churn.rfm_monetary", "RFM monetary score 1-5 (spend in the configured currency)."},
      {"churn.recency_days", "Days since the last purchase; -1 without purchases."},
      {"conversion.converted", "At least one purchase (first-order conversion)."},
      {"conversion.first_purchase_at", "occurred_at of the first purchase; empty without one."},
      {"conversion.days_to_first_purchase", "Days from first seen to the first purchase."},
      {"conversion.purchases", "Number of purchases."},
      {"conversion.repurchased", "Two or more purchases."},
      {"conversion.total_spend_minor", "Total spend in minor units (cents, fen) of the configured currency."},
      {"conversion.last_purchase_at", "occurred_at of the latest purchase; empty without one."},
      {"consent.marketing_consent", "Marketing consent (true unless withdrawn)."},
      {"consent.care_reminders_consent", "Care-reminder consent (true unless withdrawn)."},
      {"consent.marketing_sensitive", "A patient message carried a configured marketing-sensitive keyword."},
      {"program_id", "Programme of the latest enrollment."},
      {"partition", "Kafka partition of the patient's events."},
      {"glucose.latest_fasting_mmol_per_l", "Latest fasting glucose reading, mmol/L; 0 without one."},
      {"glucose.latest_fasting_at", "occurred_at of that reading; empty without one."},
      {"glucose.fasting_above_target_days_in_a_row", "Consecutive local days, ending on the latest reading's day, whose fasting reading was above the configured target (7.2 mmol/L)."},
      {"coupons.outstanding", "Coupons issued and not redeemed that have not expired at the as-of (columns version 2)."},
      {"coupons.next_expiry", "The soonest expiry among them; empty without one."},
      {"coupons.next_expiry_coupon_id", "The coupon that expires soonest; empty without one."},
      {"coupons.days_to_next_expiry", "Local days from the as-of day to that expiry's day; -1 without one."},
      {"coupons.expires_tomorrow", "That expiry falls on the local day after the as-of's."},
      {"profile.birth_month", "Birth month the patient gave, 1-12 (no year is kept); 0 when not given (columns version 2)."},
      {"profile.birth_day", "Birth day of the month; 0 when not given."},
      {"profile.birthday_today", "The as-of is the patient's birthday on the local calendar (February 29 birthdays on February 28 in other years)."},
      {"profile.next_birthday", "Local midnight starting the next birthday on or after the as-of day; empty when not given, or after 9999-12-31T23:59:59Z."},
  };
  return *d;
}

std::string TypeName(const FieldDescriptor* f) {
  if (f->is_map()) return "map (key=value;...)";
  if (f->message_type() != nullptr &&
      f->message_type()->full_name() == "google.protobuf.Timestamp") {
    return "timestamp (RFC 3339 UTC)";
  }
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: return "integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: return "number";
    case FieldDescriptor::CPPTYPE_BOOL: return "boolean";
    case FieldDescriptor::CPPTYPE_ENUM: return "enum";
    default: return "string";
  }
}

bool IsLeaf(const FieldDescriptor* f) {
  return f->is_map() || f->message_type() == nullptr ||
         f->message_type()->full_name() == "google.protobuf.Timestamp";
}

void Collect(const Descriptor* d, std::vector<const FieldDescriptor*>* prefix,
             std::vector<DumpColumns::Column>* out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    prefix->push_back(f);
    if (IsLeaf(f)) {
      DumpColumns::Column c;
      std::vector<std::string> names;
      for (const FieldDescriptor* p : *prefix) names.push_back(p->name());
      c.name = absl::StrJoin(names, ".");
      c.path = *prefix;
      c.type = TypeName(f);
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
        std::vector<std::string> values;
        for (int v = 1; v < f->enum_type()->value_count(); ++v) {
          values.push_back(f->enum_type()->value(v)->name());
        }
        c.type = absl::StrCat("enum: ", absl::StrJoin(values, ", "));
      }
      auto it = Descriptions().find(c.name);
      if (it != Descriptions().end()) c.description = it->second;
      out->push_back(std::move(c));
    } else {
      Collect(f->message_type(), prefix, out);
    }
    prefix->pop_back();
  }
}

std::string Scalar(const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: return absl::StrCat(r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64: return absl::StrCat(r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32: return absl::StrCat(r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64: return absl::StrCat(r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE: return absl::StrFormat("%.10g", r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT: return absl::StrFormat("%.7g", r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(m, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM: return r->GetEnum(m, f)->name();
    case FieldDescriptor::CPPTYPE_STRING: return r->GetString(m, f);
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const auto& ts = static_cast<const google::protobuf::Timestamp&>(r->GetMessage(m, f));
      if (!r->HasField(m, f)) return "";
      return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                              FromProtoTime(ts),
                              absl::UTCTimeZone());
    }
  }
  return "";
}

// A map entry's key or value with the map cell's separators, and the backslash, escaped by a
// backslash: an ingredient "metformin;insulin=0.99" made a cell that read as two entries.
std::string MapText(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\' || c == ';' || c == '=') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string MapValue(const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < r->FieldSize(m, f); ++i) {
    const Message& e = r->GetRepeatedMessage(m, f, i);
    const Descriptor* d = e.GetDescriptor();
    entries.emplace_back(MapText(Scalar(e, d->FindFieldByNumber(1))),
                         MapText(Scalar(e, d->FindFieldByNumber(2))));
  }
  std::sort(entries.begin(), entries.end());
  return absl::StrJoin(entries, ";", absl::PairFormatter("="));
}

// A number as this file writes one: [-]digits[.digits][e[+-]digits]. Not "-inf", "+1" or a
// number with spaces, which absl::SimpleAtod takes and a spreadsheet may read as a formula.
bool IsDecimal(absl::string_view text) {
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) ++i;
    return i > from;
  };
  if (i < text.size() && text[i] == '-') ++i;
  if (!digits()) return false;
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == text.size();
}

// A cell as the CSV holds it: text from the log with its control characters written as \xNN
// (base/printable.h: an ESC sequence or a NUL byte went into the file as it was), and text a
// spreadsheet would run as a formula - starting with = + - or @, and not a number - after an
// apostrophe (OWASP, "CSV Injection": a channel id "=HYPERLINK(...)" was a live link).
std::string CsvText(absl::string_view value) {
  std::string text = Printable(value);
  if (!text.empty() && absl::string_view("=+-@").find(text[0]) != absl::string_view::npos &&
      !IsDecimal(text)) {
    text.insert(text.begin(), '\'');
  }
  return text;
}

// RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled.
void WriteCell(absl::string_view v, std::ostream& out) {
  if (v.find_first_of(",\"\r\n") == absl::string_view::npos) {
    out << v;
    return;
  }
  out << '"';
  for (char c : v) {
    if (c == '"') out << '"';
    out << c;
  }
  out << '"';
}

const std::map<std::string, std::string>& ShortNames() {
  static const auto* m = new std::map<std::string, std::string>{
      {"stage", "churn.stage"},
      {"program", "program_id"},
      {"staff", "acquisition.current_staff_id"},
      {"channel", "acquisition.first_channel_id"},
      {"activated", "activation.activated"},
      {"risk", "churn.churn_risk"},
  };
  return *m;
}

}  // namespace

DumpColumns::DumpColumns() {
  std::vector<const FieldDescriptor*> prefix;
  Collect(v1::PatientView::descriptor(), &prefix, &columns_);
}

const DumpColumns::Column* DumpColumns::Find(absl::string_view name) const {
  for (const Column& c : columns_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string DumpColumns::Value(const Column& column, const v1::PatientView& view) const {
  const Message* m = &view;
  for (size_t i = 0; i + 1 < column.path.size(); ++i) {
    m = &m->GetReflection()->GetMessage(*m, column.path[i]);
  }
  const FieldDescriptor* leaf = column.path.back();
  return leaf->is_map() ? MapValue(*m, leaf) : Scalar(*m, leaf);
}

void DumpColumns::WriteHeader(std::ostream& out) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (i > 0) out << ',';
    out << columns_[i].name;
  }
  out << '\n';
}

void DumpColumns::WriteRow(const v1::PatientView& view, std::ostream& out) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (i > 0) out << ',';
    WriteCell(CsvText(Value(columns_[i], view)), out);
  }
  out << '\n';
}

std::string DumpColumns::Dictionary() const {
  std::string out = absl::StrCat(
      "# `tend dump --format csv`: data dictionary (columns version ", kCsvColumnsVersion,
      ")\n\n"
      "Generated by `tend dump --dictionary` from the schema (`tend.v1.PatientView`, "
      "`proto/tend/v1/state.proto`) and the descriptions in `tools/dump_format.cc`; a test "
      "keeps this file equal to the output. One row per patient, columns in this order. "
      "Timestamps are RFC 3339 UTC (empty when unset), enums are names, booleans "
      "`true`/`false`, numbers have up to 10 significant digits, a map is one cell of "
      "`key=value` pairs sorted by key and joined by `;` (in keys and values `\\`, `;` and "
      "`=` are escaped with a backslash); quoting per RFC 4180. Text from the log has its "
      "control characters written as `\\xNN`, and a cell that is not a number but starts "
      "with `=`, `+`, `-` or `@` starts with an apostrophe, so that no spreadsheet runs it as a "
      "formula (both since columns version 3). Metric "
      "definitions: README.md, Projections.\n\n"
      "| column | type | meaning |\n|---|---|---|\n");
  for (const Column& c : columns_) {
    absl::StrAppend(&out, "| `", c.name, "` | ", c.type, " | ", c.description, " |\n");
  }
  return out;
}

absl::StatusOr<std::vector<DumpFilter>> ParseDumpFilters(const DumpColumns& columns,
                                                         absl::string_view where) {
  std::vector<DumpFilter> filters;
  if (where.empty()) return filters;
  for (absl::string_view cond : absl::StrSplit(where, ',')) {
    cond = absl::StripAsciiWhitespace(cond);
    size_t at = cond.find_first_of("=!<>");
    if (at == absl::string_view::npos || at == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--where: \"", cond, "\" is not COLUMN OP VALUE (OP: = != >= <= > <), e.g. stage=silent"));
    }
    std::string name(absl::StripAsciiWhitespace(cond.substr(0, at)));
    size_t op_len = (at + 1 < cond.size() && cond[at + 1] == '=') ? 2 : 1;
    DumpFilter f;
    f.op = std::string(cond.substr(at, op_len));
    if (f.op == "!" || f.op == "==") {
      return absl::InvalidArgumentError(
          absl::StrCat("--where: \"", cond, "\": OP is one of = != >= <= > <"));
    }
    f.value = std::string(absl::StripAsciiWhitespace(cond.substr(at + op_len)));
    auto alias = ShortNames().find(name);
    if (alias != ShortNames().end()) name = alias->second;
    f.column = columns.Find(name);
    if (f.column == nullptr) {
      std::vector<std::string> shorts;
      for (const auto& [k, v] : ShortNames()) shorts.push_back(k);
      return absl::InvalidArgumentError(absl::StrCat(
          "--where: unknown column \"", name, "\" (short names: ", absl::StrJoin(shorts, ", "),
          "; or any CSV column, see `tend dump --dictionary`)"));
    }
    const FieldDescriptor* leaf = f.column->path.back();
    if (IsNumericField(leaf)) {
      if (!absl::SimpleAtod(f.value, &f.number)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--where: ", name, " is a number; \"", f.value, "\" is not"));
      }
    } else if (f.op != "=" && f.op != "!=") {
      return absl::InvalidArgumentError(absl::StrCat("--where: ", name, " is ", f.column->type,
                                                     ": only = and != compare it"));
    } else if (leaf->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      const auto* v = leaf->enum_type()->FindValueByName(absl::AsciiStrToUpper(f.value));
      if (v == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("--where: ", name, " has no value \"",
                                                       f.value, "\" (", f.column->type, ")"));
      }
      f.value = v->name();
    } else if (leaf->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      f.value = absl::AsciiStrToLower(f.value);
      if (f.value != "true" && f.value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--where: ", name, " is true or false, not \"", f.value, "\""));
      }
    }
    filters.push_back(std::move(f));
  }
  return filters;
}

bool MatchesFilters(const DumpColumns& columns, const std::vector<DumpFilter>& filters,
                    const v1::PatientView& view) {
  for (const DumpFilter& f : filters) {
    const std::string v = columns.Value(*f.column, view);
    if (IsNumericField(f.column->path.back())) {
      double x = 0;
      if (!absl::SimpleAtod(v, &x)) return false;
      const bool ok = f.op == "=" ? x == f.number
                      : f.op == "!=" ? x != f.number
                      : f.op == ">=" ? x >= f.number
                      : f.op == "<=" ? x <= f.number
                      : f.op == ">"  ? x > f.number
                                     : x < f.number;
      if (!ok) return false;
    } else if ((v == f.value) != (f.op == "=")) {
      return false;
    }
  }
  return true;
}

}  // namespace tend
