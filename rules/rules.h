// Operators' rules (proto/tend/v1/rules.proto): loaded from YAML once at start, every field path
// and value resolved against the schemas of the patient's view (tend.v1.PatientView) and the
// event (tend.v1.Event), so a mistake is an error at load time naming the rule, the key and the
// problem. Conditions then evaluate without any lookup by name.
//
// Firing, timers and policies are rules/decide.h.
//
// Thread safety: a RuleSet is immutable after Load/Parse; evaluation is pure.
#ifndef TEND_RULES_RULES_H_
#define TEND_RULES_RULES_H_

#include <google/protobuf/descriptor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/hash.h"
#include "projections/uplift.h"
#include "tend/v1/commands.pb.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/rules.pb.h"
#include "tend/v1/state.pb.h"

namespace tend {

// A field's value read from the view and the event (null when there is none), as a comparable.
struct FieldValue {
  enum class Kind { kNumber, kBool, kEnum, kString };
  Kind kind = Kind::kNumber;
  double number = 0;
  bool boolean = false;
  int enum_number = 0;
  // An enum's type: ToString names its value. Reading an enum copies no name: ~200 instructions
  // a read of patient.churn.stage went to finding and copying it, where comparing reads the
  // number alone.
  const google::protobuf::EnumDescriptor* enum_type = nullptr;
  std::string str;  // string values
  std::string ToString() const;
};

// "patient.adherence.current_streak", "event.check_in.kind", "patient.x.map_field[KEY]",
// resolved to the chain of fields from the root message to a scalar leaf.
struct FieldPath {
  enum class Root { kPatient, kEvent };
  Root root = Root::kPatient;
  std::vector<const google::protobuf::FieldDescriptor*> chain;  // the last one is the leaf
  // The reflection of the message that holds chain[i], and of the map's entry message (set when
  // the leaf is a map): resolved once, so that a read asks no message for its reflection.
  std::vector<const google::protobuf::Reflection*> holders;
  const google::protobuf::Reflection* entry = nullptr;
  std::string map_key;  // set when the leaf is a map<string, scalar> entry
  std::string text;     // as written
  // For a patient.SECTION.FIELD[.FIELD...] path: SECTION read by its generated accessor,
  // not by reflection (null otherwise, or for a section SectionGetter does not list: then
  // reflection reads it).
  using Section = const google::protobuf::Message& (*)(const v1::PatientView&);
  Section section = nullptr;
  // For an event.BODY.FIELD path: BODY (scan, check_in, ...) read by its generated accessor
  // (BodyGetter), not by reflection; null otherwise.
  using Body = const google::protobuf::Message& (*)(const v1::Event&);
  Body body = nullptr;
  // For a path ending in a scalar field (or a Timestamp's seconds) of the view or one of its
  // sections, or of the event, a body or a reading: the last `leaf_depth` (1, or 2 for
  // FIELD.seconds) fields read by their generated accessors from the message holding them
  // (LeafGetter); null otherwise.
  using Leaf = FieldValue (*)(const google::protobuf::Message&);
  Leaf leaf = nullptr;
  int leaf_depth = 0;

  // The leaf's value type (the map's value type for a map entry).
  const google::protobuf::FieldDescriptor* value_field() const;
};

// The generated accessor of PatientView's message field `f` (a section, e.g. adherence), or null
// when `f` is not one of them. Reading a section this way costs a call, where
// Reflection::GetMessage took ~170 instructions (99.5 million over ~590,000 reads of rule fields
// in a replay with the default pack: docs/benchmarks.md, "Instructions, counted"); tests check
// every section is listed.
FieldPath::Section SectionGetter(const google::protobuf::FieldDescriptor* f);

// The same for Event's body fields (scan, check_in, ...): the generated accessor of the body
// message `f`, or null when `f` is not one. An unset body reads as its default instance, as
// reflection reads it.
FieldPath::Body BodyGetter(const google::protobuf::FieldDescriptor* f);

// The generated accessor of scalar field `f` of PatientView or of one of its sections, or of
// Event, one of its bodies or a check-in's reading, read from the message that holds `f`; with
// `seconds`, of a Timestamp field `f`'s seconds. Null for any other field (reflection reads
// those). Reflection::GetInt32 and its kin took ~130 instructions a read and ReadScalar's
// dispatch ~90 more (docs/benchmarks.md, "Instructions, counted"); tests check every such field
// of the view and of each body is listed and reads what reflection reads.
FieldPath::Leaf LeafGetter(const google::protobuf::FieldDescriptor* f, bool seconds = false);

// Whether the field holds a number (any integer or floating type; a map does not): what rule
// conditions and `tend dump --where` compare with LT/LE/GT/GE.
bool IsNumericField(const google::protobuf::FieldDescriptor* f);

// Parses and resolves `text`. kInvalidArgument explaining what is wrong (unknown field with the
// fields allowed there, a message where a scalar is needed, a repeated field).
absl::StatusOr<FieldPath> ResolveFieldPath(absl::string_view text);

FieldValue ReadField(const FieldPath& path, const v1::PatientView& view, const v1::Event* event);

class CompiledCondition {
 public:
  // Compiles `condition` (at `key`, for messages). `event_fields_allowed`: whether event.* paths
  // may be used (not in schedule or absence triggers' conditions, which have no event).
  static absl::StatusOr<CompiledCondition> Compile(const v1::Condition& condition,
                                                   const std::string& key,
                                                   bool event_fields_allowed);
  // Whether the condition holds; appends each comparison evaluated, with the actual value, to
  // `trace` (may be null): the explanation of a decision.
  bool Evaluate(const v1::PatientView& view, const v1::Event* event,
                v1::Explanation* trace) const;
  // The PatientView sections (projections::ViewPart bits) the condition reads: found once, when
  // compiled (read for every rule at every decision).
  uint32_t view_parts() const { return parts_; }
  bool always() const { return kind_ == Kind::kAlways; }

 private:
  enum class Kind { kAlways, kCompare, kAll, kAny, kNot };
  // `c` with its parts_ set from its path and its children's parts_.
  static CompiledCondition Finish(CompiledCondition c);
  Kind kind_ = Kind::kAlways;
  uint32_t parts_ = 0;
  FieldPath path_;
  v1::Comparison::Op op_ = v1::Comparison::OP_UNSPECIFIED;
  FieldValue value_;
  std::string expected_text_;  // value_ as explanations show it
  std::vector<CompiledCondition> children_;
};

struct CompiledRule {
  v1::Rule rule;
  // The trigger's kind, and the Event body its event or absence names (BODY_NOT_SET for an
  // absence of "activity"): what deciding on an event asks of every rule, without the Rule
  // message's accessors and kind names (~40 instructions a rule an event, ~10% of deciding on
  // one with the default pack).
  enum class Trigger : uint8_t { kEvent, kAbsence, kBecame, kSchedule, kDate };
  Trigger trigger = Trigger::kEvent;
  v1::Event::BodyCase trigger_body = v1::Event::BODY_NOT_SET;
  CompiledCondition trigger_filter;  // event/absence filter, or the `became` condition
  CompiledCondition when;
  int schedule_minute_of_day = -1;  // schedule and date triggers: minutes after local midnight
  absl::Duration absence_after;     // absence triggers
  // Date triggers: the Timestamp's `seconds` field (0: no date), the sections it reads, and the
  // days before it.
  std::optional<FieldPath> date_seconds;
  uint32_t date_parts = 0;
  int date_days_before = 0;
  // PatientView sections read by `when` and the action's parameters (projections::ViewPart).
  uint32_t action_parts = 0;
  // The action's template parameters, in name order: a literal, or a field read when deciding.
  struct Parameter {
    std::string name;
    std::string literal;
    std::optional<FieldPath> field;
  };
  std::vector<Parameter> parameters;
  // The rule's variants (Rule.variants), each with its upper bound in [0, 1] of the cumulative
  // shares, its action (the rule's when it has none) and its parameters compiled.
  struct Variant {
    std::string id;
    double upper = 0;
    v1::Action action;
    std::vector<Parameter> parameters;
    absl::Duration delay;
  };
  std::vector<Variant> variants;
  // The experiments (RuleFile.experiments, in file order) that may hold this rule's commands
  // back: the rule is theirs and not exempt.
  struct Holdout {
    std::string experiment_id;
    double share = 0;
    std::string program_id;  // empty: every patient
    absl::Time starts_at = absl::InfinitePast();  // nobody held back before it
  };
  std::vector<Holdout> holdouts;
};

// A patient is held out when its AssignmentUnit (base/hash.h) of the experiment id is below the
// experiment's share.

// The variant of `rule` this patient gets, or null when the rule has none. By AssignmentUnit of
// ("variants:" + rule id, patient id): no experiment id contains ':', so variants and holdouts
// are assigned independently.
const CompiledRule::Variant* VariantOf(const CompiledRule& rule, absl::string_view patient_id);

class RuleSet;
// The experiments of `rules` as the uplift reads them (projections/uplift.h): every holdout
// (arms "holdout", "treated"), then every rule with variants ("variants:" + rule id, arms its
// variants), in file order, assigned exactly as the rules assign them.
std::vector<projections::ArmSplit> ArmSplitsOf(const RuleSet& rules);

class RuleSet {
 public:
  // Parses YAML text (the file named `source`) with the RuleFile schema and validates every rule.
  // Errors read "SOURCE: rule ID: key: problem".
  static absl::StatusOr<RuleSet> Parse(absl::string_view yaml, absl::string_view source);
  static absl::StatusOr<RuleSet> Load(const std::string& path);

  const std::vector<CompiledRule>& rules() const { return rules_; }
  const std::vector<v1::Experiment>& experiments() const { return experiments_; }
  // The rule with this id, or null.
  const CompiledRule* Find(absl::string_view id) const;
  // The RuleFingerprint (rules/memory.h) of the id of the rule at `position` in rules().
  uint64_t fingerprint(size_t position) const { return fingerprints_[position]; }
  // The position in rules() of the rule whose id has this fingerprint, or -1. No two rules of a
  // set share one (Parse refuses the set).
  int FindFingerprint(uint64_t fingerprint) const {
    for (size_t i = 0; i < fingerprints_.size(); ++i) {
      if (fingerprints_[i] == fingerprint) return static_cast<int>(i);
    }
    return -1;
  }
  bool has_timers() const { return has_timers_; }  // any absence or schedule rule
  // The positions in rules() in the order of the rules' ids: the order in which a patient's
  // timers due the same second fire (DecideOnTimersDue).
  const std::vector<int>& id_order() const { return id_order_; }

 private:
  std::vector<CompiledRule> rules_;
  std::vector<int> id_order_;
  std::vector<uint64_t> fingerprints_;  // RuleFingerprint of each rule's id, parallel to rules_
  std::vector<v1::Experiment> experiments_;
  bool has_timers_ = false;
};

// One line per rule: "id vN: trigger -> action [CATEGORY, priority P, cooldown, ttl]".
std::string DescribeRules(const RuleSet& rules);

}  // namespace tend

#endif  // TEND_RULES_RULES_H_
