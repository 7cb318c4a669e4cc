// The analysts' flat view of a patient: tend.v1.PatientView as CSV columns, the data dictionary
// that documents them, and the --where filters of `tend dump`.
//
// Columns (version 2; a change of names, order or meaning is a new version, noted in the
// dictionary. Version 2 added the coupon and profile event counts after consent_changed, and the
// coupons.* and profile.* sections at the end):
// every scalar field of PatientView in field order, nested sections joined with '.'
// ("churn.stage", "events_by_type.check_in"); timestamps as RFC 3339 UTC (empty when unset);
// enums by name; booleans true/false; doubles with 10 significant digits; a map as one column of
// "key=value" pairs, sorted by key, joined by ';'. Quoting per RFC 4180.
//
// Thread safety: DumpColumns is immutable after construction; use one per thread or share it.
#ifndef TEND_TOOLS_DUMP_FORMAT_H_
#define TEND_TOOLS_DUMP_FORMAT_H_

#include <google/protobuf/descriptor.h>

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tend/v1/state.pb.h"

namespace tend {

// 3: cells escaped (control characters, formulas, map separators: DumpColumns::Dictionary).
inline constexpr int kCsvColumnsVersion = 3;

class DumpColumns {
 public:
  struct Column {
    std::string name;  // "churn.stage"
    std::vector<const google::protobuf::FieldDescriptor*> path;
    std::string type;         // as the dictionary shows it: string, integer, number, ...
    std::string description;  // from the dictionary table (dump_format.cc)
  };

  DumpColumns();
  const std::vector<Column>& columns() const { return columns_; }
  // The column, or null.
  const Column* Find(absl::string_view name) const;

  // The value of `column` in `view`, as `--where` compares it: the text itself, where the CSV
  // cell escapes it (WriteRow: control characters, formulas; map entries are escaped here too).
  std::string Value(const Column& column, const v1::PatientView& view) const;
  void WriteHeader(std::ostream& out) const;
  void WriteRow(const v1::PatientView& view, std::ostream& out) const;
  // The data dictionary as a Markdown table (docs/data-dictionary.md is this, checked in).
  std::string Dictionary() const;

 private:
  std::vector<Column> columns_;
};

// One --where condition: COLUMN OP VALUE with OP one of = != >= <= > <. Numbers compare as
// numbers; enums and booleans case-insensitively by name; strings exactly.
struct DumpFilter {
  const DumpColumns::Column* column = nullptr;
  std::string op;
  std::string value;
  double number = 0;  // for numeric columns
};
// Parses "stage=silent,program=P" (conditions joined by ','; all must hold). Short names:
// stage (churn.stage), program (program_id), staff (acquisition.current_staff_id), channel
// (acquisition.first_channel_id), activated (activation.activated), risk (churn.churn_risk).
// kInvalidArgument naming the condition and what is allowed.
absl::StatusOr<std::vector<DumpFilter>> ParseDumpFilters(const DumpColumns& columns,
                                                         absl::string_view where);
bool MatchesFilters(const DumpColumns& columns, const std::vector<DumpFilter>& filters,
                    const v1::PatientView& view);

}  // namespace tend

#endif  // TEND_TOOLS_DUMP_FORMAT_H_
