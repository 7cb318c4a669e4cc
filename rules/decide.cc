#include "rules/decide.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "base/hash.h"
#include "base/time.h"
#include "projections/calendar.h"
#include "projections/churn.h"
#include "projections/patient.h"

namespace tend {
namespace {

bool InQuietHours(const PolicyOptions& p, int minute) {
  if (p.quiet_start_minute == p.quiet_end_minute) return false;
  if (p.quiet_start_minute < p.quiet_end_minute) {
    return minute >= p.quiet_start_minute && minute < p.quiet_end_minute;
  }
  return minute >= p.quiet_start_minute || minute < p.quiet_end_minute;
}

int32_t DayNumber(absl::CivilDay day) {
  return static_cast<int32_t>(day - absl::CivilDay(1970, 1, 1));
}

// The local day of `t` as DayNumber numbers it, for every finite `t`. Local days, minutes and the
// trigger's day go through projections/calendar.h here (the zone's offset spans each thread
// keeps, equal to absl's conversions for every finite time): absl's searches of the zone's
// transitions and its formatter were 30% of deciding on a schedule timer (70 of 230 samples in
// `tend bench --burst --patients 100000`), a handful per firing.
int32_t LocalDayNumber(absl::Time t, const absl::TimeZone& tz) {
  return static_cast<int32_t>(projections::LocalDayNumber(t, tz));
}

// Drops cap counters of days before yesterday (relative to `now`).
void PruneDays(v1::RulesState* state, absl::Time now, const absl::TimeZone& tz) {
  if (state->sent_size() == 0) return;
  const int32_t yesterday = LocalDayNumber(now, tz) - 1;
  auto* sent = state->mutable_sent();
  int kept = 0;
  for (int i = 0; i < sent->size(); ++i) {
    if (sent->Get(i).day() >= yesterday) sent->SwapElements(i, kept++);
  }
  sent->DeleteSubrange(kept, sent->size() - kept);
}

v1::DailyCount* SentCounter(v1::RulesState* state, int32_t day, v1::Category category) {
  for (auto& c : *state->mutable_sent()) {
    if (c.day() == day && c.category() == category) return &c;
  }
  v1::DailyCount* c = state->add_sent();
  c->set_day(day);
  c->set_category(category);
  return c;
}

// The patient's rule memories, found by their rule's position in the rule set through a
// RuleMemoryIndex: the caller's (kept across calls), else one built here. A new memory is a row
// added at the end (first-use order; any order is correct).
class Memories {
 public:
  Memories(const RuleSet& rules, v1::RulesState* state, RuleMemoryIndex* index)
      : rules_(rules), state_(state), index_(index != nullptr ? index : &own_index_) {
    if (index_->built) return;
    index_->by_rule.assign(rules.rules().size(), -1);
    const auto& fingerprints = state_->memory_rule();
    for (int row = 0; row < fingerprints.size(); ++row) {
      const int pos = rules.FindFingerprint(fingerprints.Get(row));
      if (pos >= 0) index_->by_rule[pos] = row;
    }
    index_->built = true;
  }
  v1::RulesState* state() const { return state_; }

  // The rule's memory, if it has one.
  std::optional<RuleMemoryRef> Find(const CompiledRule& rule) {
    const int row = index_->by_rule[Position(rule)];
    if (row < 0) return std::nullopt;
    return RuleMemoryRef(state_, row);
  }
  // The memory of a rule since removed from the set, if it has one.
  std::optional<RuleMemoryRef> FindRemoved(absl::string_view rule_id) {
    const int row = FindRuleMemoryRow(*state_, RuleFingerprint(rule_id));
    if (row < 0) return std::nullopt;
    return RuleMemoryRef(state_, row);
  }
  // The rule's memory, added when the patient has none yet.
  RuleMemoryRef Get(const CompiledRule& rule) {
    const size_t pos = Position(rule);
    int& row = index_->by_rule[pos];
    if (row < 0) {
      row = AddRuleMemoryRow(state_, rules_.fingerprint(pos),
                             static_cast<int>(rules_.rules().size()));
    }
    return RuleMemoryRef(state_, row);
  }

 private:
  size_t Position(const CompiledRule& rule) const {
    return static_cast<size_t>(&rule - rules_.rules().data());
  }

  const RuleSet& rules_;
  v1::RulesState* state_;
  RuleMemoryIndex own_index_;  // when the caller keeps none
  RuleMemoryIndex* index_;
};

struct Candidate {
  const CompiledRule* rule;
  std::string trigger;
  v1::Explanation* explanation;  // the output's (DecideOutput::NewExplanation)
};

// A decision about the candidate (outcome not set yet), added to the output's decisions: every
// decision made is recorded, and one at a time, so it goes in at once. It refers to the
// candidate's explanation, which a command the candidate becomes refers to as well: the output
// owns the explanation (DecideOutput::Attach), so one explanation may have two parents. Copying
// it for the decision was ~3% of the default pack's CPU (docs/benchmarks.md, 2026-12-03
// evening).
v1::Decision* DecisionFor(const CompiledRule& r, const DecideInput& in, const Candidate& c,
                          DecideOutput* out) {
  v1::Decision* d = out->decisions.Add();
  d->set_rule_id(r.rule.id());
  d->set_rule_version(r.rule.version());
  d->set_patient_id(in.state->patient_id());
  d->set_trigger(c.trigger);
  out->Attach(d, c.explanation, absl::ToUnixSeconds(in.now));
  return d;
}

// Evaluates the rule's `when`; a candidate for the policies when it holds, else a CONDITIONS
// decision (when `record_misses`).
void Consider(const CompiledRule& r, const DecideInput& in, Candidate c, bool record_misses,
              std::vector<Candidate>* fired, DecideOutput* out) {
  const bool holds = r.when.Evaluate(in.view->Get(r.when.view_parts()), in.event, c.explanation);
  if (holds) {
    fired->push_back(std::move(c));
  } else if (record_misses) {
    v1::Decision* d = DecisionFor(r, in, c, out);
    d->set_outcome(v1::Decision::SUPPRESSED);
    d->set_reason(v1::Decision::CONDITIONS);
  }
}

void SetTimer(RuleMemoryRef m, absl::string_view rule_id, int64_t due_s, DecideOutput* out) {
  const int64_t old = m.timer_due_s();
  if (old == due_s) return;
  m.set_timer_due_s(due_s);
  out->timer_changes.push_back({std::string(rule_id), old, due_s});
}

bool AbsenceMatches(const CompiledRule& r, const DecideInput& in) {
  if (r.trigger_body == v1::Event::BODY_NOT_SET) {  // "activity"
    if (!projections::IsPatientInitiated(*in.event)) return false;
  } else if (r.trigger_body != in.event->body_case()) {
    return false;
  }
  return r.trigger_filter.always() ||
         r.trigger_filter.Evaluate(in.view->Get(r.trigger_filter.view_parts()), in.event, nullptr);
}

// Moves an absence rule's anchor to `anchor_s` when it is newer. The timer moves lazily: an
// armed timer keeps its key (due no later than the new anchor's) and, when it falls due, is
// re-armed at the anchor's due time instead of firing — so a patient active every day costs one
// timer write per window, not one per event. An anchor whose window has already passed on the
// partition clock arms nothing: the silence it ends was already reported (the earlier timer fell
// due first, and every armed timer is due after the clock), and a late event must not fire a
// timer in the past twice.
void MoveAbsence(const CompiledRule& r, const DecideInput& in, int64_t anchor_s,
                 Memories* memories, DecideOutput* out) {
  RuleMemoryRef m = memories->Get(r);
  if (m.absence_anchor_s() >= anchor_s) return;  // not newer: nothing moves
  m.set_absence_anchor_s(anchor_s);
  const int64_t due_s = anchor_s + absl::ToInt64Seconds(r.absence_after);
  if (due_s > absl::ToUnixSeconds(in.now) && m.timer_due_s() == 0) {
    SetTimer(m, r.rule.id(), due_s, out);
  }
}

bool ScheduleApplies(const CompiledRule& r, const DecideInput& in) {
  const std::string& program = r.rule.trigger().schedule().program_id();
  return (program.empty() || in.state->enrollment().program_id() == program) &&
         !projections::HardChurned(*in.state, in.now);
}

// Date rules (Trigger.date): the date the rule's field holds in the view now (0: none).
int64_t DateOf(const CompiledRule& r, const DecideInput& in) {
  const v1::PatientView& view = in.view->Get(r.date_parts);
  return static_cast<int64_t>(ReadField(*r.date_seconds, view, nullptr).number);
}

// Brings a date rule up to date with the view now: arms its timer for the date's due moment
// (`at` on the local day `days_before` days before the date), fires when that moment has come
// on its day, and - once a date has fired or its day is over - looks again when the date has
// passed and its due day is over, for the next one. No date: no timer. A date fires at most
// once: the memory's date_target_s is the latest date fired or let pass, and a date at or before
// it is never decided again (dates come in ascending order; one earlier than a fired one was due
// before it, so its day is over or is that same day, which had its reminder).
void StepDate(const CompiledRule& r, const DecideInput& in, RuleMemoryRef m,
              std::vector<Candidate>* fired, DecideOutput* out) {
  const int64_t target_s = DateOf(r, in);
  if (target_s <= 0) {
    SetTimer(m, r.rule.id(), 0, out);
    return;
  }
  const int64_t now_s = absl::ToUnixSeconds(in.now);
  const absl::CivilDay today = projections::LocalDay(in.now, in.tz);
  const absl::CivilDay due_day =
      projections::LocalDay(absl::FromUnixSeconds(target_s), in.tz) - r.date_days_before;
  // Strictly after now, at the earliest the next local midnight: a date that stays in the view
  // after it fired (a birthday is "next" all day) is looked at again once a day, never in a loop.
  const int64_t recheck_s =
      std::max({target_s + 1, absl::ToUnixSeconds(projections::FromLocal(due_day + 1, in.tz)),
                absl::ToUnixSeconds(projections::FromLocal(today + 1, in.tz))});
  if (target_s <= m.date_target_s()) {  // fired (or let pass) already
    SetTimer(m, r.rule.id(), recheck_s, out);
    return;
  }
  const int64_t due_s = absl::ToUnixSeconds(projections::FromLocal(
      absl::CivilMinute(due_day.year(), due_day.month(), due_day.day(),
                        r.schedule_minute_of_day / 60, r.schedule_minute_of_day % 60),
      in.tz));
  if (due_s > now_s) {
    SetTimer(m, r.rule.id(), due_s, out);
    return;
  }
  m.set_date_target_s(target_s);
  SetTimer(m, r.rule.id(), recheck_s, out);
  if (today != due_day) return;  // its day is over: let it pass
  Candidate c{&r, absl::StrCat("date:", target_s), out->NewExplanation()};
  Consider(r, in, std::move(c), true, fired, out);
}

// Applies the global policies to the firings of one moment, highest priority first.
void Resolve(const PolicyOptions& policy, const DecideInput& in, std::vector<Candidate> fired,
             Memories* memories, DecideOutput* out);


void FillParameters(const std::vector<CompiledRule::Parameter>& parameters,
                    const v1::PatientView& view, const v1::Event* event,
                    google::protobuf::Map<std::string, std::string>* out) {
  for (const auto& p : parameters) {
    (*out)[p.name] = p.field ? ReadField(*p.field, view, event).ToString() : p.literal;
  }
}

}  // namespace

std::string CommandId(absl::string_view rule_id, int rule_version, absl::string_view patient_id,
                      absl::string_view trigger) {
  // Two hashes of rule_id \x1f version \x1f patient_id \x1f trigger, each as 16 lowercase hex
  // digits. FNV-1a folds byte by byte, so hashing the pieces in turn hashes the joined string.
  const absl::AlphaNum version(rule_version);
  const absl::string_view pieces[] = {rule_id, "\x1f", version.Piece(), "\x1f",
                                      patient_id, "\x1f", trigger};
  uint64_t a = kFnv1a64OffsetBasis;
  uint64_t b = 0x84222325cbf29ce4ULL;
  for (absl::string_view piece : pieces) Fnv1a64Pair(&a, &b, piece);
  a = SplitMix64Finalize(a + kSplitMix64Gamma);
  b = SplitMix64Finalize(b + kSplitMix64Gamma);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int i = 0; i < 16; ++i) {
    id[15 - i] = kHex[(a >> (4 * i)) & 15];
    id[31 - i] = kHex[(b >> (4 * i)) & 15];
  }
  return id;
}

absl::Time QuietHoursEnd(const PolicyOptions& p, absl::Time t, const absl::TimeZone& tz) {
  // Outside the quiet hours, as most times are: the local minute of the day from the zone's
  // offset at `t` (projections::OffsetAt), for any time within ±34,000 years.
  const int64_t s = absl::ToUnixSeconds(t);
  if (s > -(int64_t{1} << 40) && s < (int64_t{1} << 40)) {
    const int64_t local_s = s + projections::OffsetAt(t, tz).offset_s;
    const int64_t day_start_s =
        projections::FloorDiv(local_s, projections::kDaySeconds) * projections::kDaySeconds;
    const int64_t second_of_day = local_s - day_start_s;
    if (!InQuietHours(p, static_cast<int>(second_of_day / 60))) return t;
  }
  const absl::CivilMinute local = absl::ToCivilMinute(t, tz);
  const int minute = local.hour() * 60 + local.minute();
  if (!InQuietHours(p, minute)) return t;  // beyond the fast path's range
  absl::CivilDay day = absl::CivilDay(local);
  // Past the start on a window that crosses midnight: it ends tomorrow.
  if (p.quiet_start_minute > p.quiet_end_minute && minute >= p.quiet_start_minute) day += 1;
  const absl::CivilMinute end(day.year(), day.month(), day.day(), p.quiet_end_minute / 60,
                              p.quiet_end_minute % 60);
  // absl resolves a local time skipped or repeated by a DST change to a real instant.
  return absl::FromCivil(end, tz);
}

int SentOn(const v1::RulesState& state, absl::CivilDay day, v1::Category category) {
  for (const auto& c : state.sent()) {
    if (c.day() == DayNumber(day) && c.category() == category) return c.sent();
  }
  return 0;
}

absl::Time NextLocalTime(absl::Time t, int minute_of_day, const absl::TimeZone& tz) {
  // Within a span of one offset (projections::OffsetAt), farther than two days from its ends, a
  // local time is one instant, local seconds less the offset (projections::FromLocal says why).
  // Here the span is the one at `t`, found once for today's time and tomorrow's (FromLocal for
  // each, from a civil minute, cost 1.2% more of a counted replay, 2026-12-07): absl::FromCivil's
  // answer without its search of the zone's transitions, about a tenth of the instructions of
  // deciding on a schedule timer (bench/instructions). Nearer a span's ends (a DST change within
  // two days), absl's.
  constexpr int64_t kMargin = 2 * projections::kDaySeconds;
  const projections::OffsetUntil span = projections::OffsetAt(t, tz);
  if (span.until_s - span.from_s > 2 * kMargin) {  // a span of times 1800-2300 (no overflow)
    const int64_t s = absl::ToUnixSeconds(t);
    const int64_t day_start_s =
        projections::FloorDiv(s + span.offset_s, projections::kDaySeconds) *
            projections::kDaySeconds -
        span.offset_s;
    for (int i = 0; i < 2; ++i) {  // today's time, else tomorrow's
      const int64_t at_s =
          day_start_s + i * projections::kDaySeconds + int64_t{minute_of_day} * 60;
      if (at_s < span.from_s + kMargin || at_s >= span.until_s - kMargin) break;
      const absl::Time next = absl::FromUnixSeconds(at_s);
      if (next > t) return next;
    }
  }
  absl::CivilDay day = projections::LocalDay(t, tz);
  for (int i = 0; i < 3; ++i, ++day) {
    const absl::CivilMinute at(day.year(), day.month(), day.day(), minute_of_day / 60,
                               minute_of_day % 60);
    const absl::Time next = absl::FromCivil(at, tz);
    if (next > t) return next;
  }
  return t + absl::Hours(24);  // unreachable: tomorrow's occurrence is always after t
}

void DecideOutput::Clear() {
  // What was lent goes back to the pools first: a message's Clear would free it.
  for (v1::Decision* d : attached_decisions_) {
    d->unsafe_arena_release_explanation();
    d->unsafe_arena_release_at();
  }
  for (v1::ReminderCommand* c : attached_commands_) {
    c->unsafe_arena_release_explanation();  // null for a command not lent one
    c->unsafe_arena_release_not_before();
    c->unsafe_arena_release_expires_at();
  }
  attached_decisions_.clear();
  attached_commands_.clear();
  commands.Clear();
  decisions.Clear();
  timer_changes.clear();
  for (size_t i = 0; i < explanations_used_; ++i) explanations_[i]->Clear();
  explanations_used_ = 0;
  timestamps_used_ = 0;  // each is set whole when lent again
}

v1::Explanation* DecideOutput::NewExplanation() {
  if (explanations_used_ == explanations_.size()) {
    explanations_.push_back(std::make_unique<v1::Explanation>());
  }
  return explanations_[explanations_used_++].get();
}

google::protobuf::Timestamp* DecideOutput::NewTimestamp(int64_t seconds) {
  if (timestamps_used_ == timestamps_.size()) {
    timestamps_.push_back(std::make_unique<google::protobuf::Timestamp>());
  }
  google::protobuf::Timestamp* t = timestamps_[timestamps_used_++].get();
  t->set_seconds(seconds);
  t->set_nanos(0);
  return t;
}

// unsafe_arena_set_allocated: the pointer, without taking it over (the message has none yet).
void DecideOutput::Attach(v1::Decision* d, v1::Explanation* e, int64_t at_s) {
  d->unsafe_arena_set_allocated_explanation(e);
  d->unsafe_arena_set_allocated_at(NewTimestamp(at_s));
  attached_decisions_.push_back(d);
}

void DecideOutput::AttachTimes(v1::ReminderCommand* c, int64_t not_before_s, int64_t expires_at_s) {
  c->unsafe_arena_set_allocated_not_before(NewTimestamp(not_before_s));
  c->unsafe_arena_set_allocated_expires_at(NewTimestamp(expires_at_s));
  attached_commands_.push_back(c);
}

void DecideOutput::Attach(v1::ReminderCommand* c, v1::Explanation* e) {
  c->unsafe_arena_set_allocated_explanation(e);  // AttachTimes registered it
}

void DecideOutput::RemoveLastCommand() {
  v1::ReminderCommand* c = commands.Mutable(commands.size() - 1);
  c->unsafe_arena_release_explanation();
  c->unsafe_arena_release_not_before();
  c->unsafe_arena_release_expires_at();
  if (!attached_commands_.empty() && attached_commands_.back() == c) attached_commands_.pop_back();
  commands.RemoveLast();
}

LazyView::LazyView(const projections::ProjectionConfig& config, const v1::PatientState& state,
                   absl::Time as_of)
    : config_(config),
      state_(state),
      as_of_(as_of),
      tz_(projections::PatientTimeZone(config, state, &own_zone_name_)),
      own_view_(std::in_place),
      view_(&*own_view_) {
  zone_name_ = own_zone_name_;
}

LazyView::LazyView(const projections::ProjectionConfig& config, const v1::PatientState& state,
                   absl::Time as_of, const absl::TimeZone& tz, absl::string_view tz_name,
                   const projections::ActiveDaySummary* days, Scratch* scratch)
    : config_(config), state_(state), as_of_(as_of), zone_name_(tz_name), tz_(tz), days_(days) {
  if (scratch != nullptr) {
    projections::ClearViewForReuse(&scratch->view, scratch->computed);
    scratch->computed = 0;
    view_ = &scratch->view;
    scratch_ = scratch;
  } else {
    own_view_.emplace();
    view_ = &*own_view_;
  }
}

const v1::PatientView& LazyView::Get(uint32_t parts) {
  const uint32_t missing = parts & ~computed_;
  if (missing != 0) {
    projections::ComputeViewParts(config_, state_, tz_, zone_name_, as_of_, missing, view_, days_);
    computed_ |= missing;
    if (scratch_ != nullptr) scratch_->computed |= missing;
  }
  return *view_;
}

void DecideOnEvent(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& in,
                   v1::RulesState* state, DecideOutput* out) {
  const v1::Event& event = *in.event;
  const v1::Event::BodyCase body = event.body_case();
  const uint32_t changed = projections::ViewPartsChangedBy(event);
  const int64_t now_s = absl::ToUnixSeconds(in.now);
  // An event's time on the patient's calendar, never later than the partition clock.
  const int64_t event_s = std::min<int64_t>(event.occurred_at().seconds(), now_s);
  std::vector<Candidate> fired;
  Memories memories(rules, state, in.memories);
  using Trigger = CompiledRule::Trigger;
  for (const CompiledRule& r : rules.rules()) {
    if (r.trigger == Trigger::kEvent) {
      if (r.trigger_body != body) continue;
      // Evaluated without a trace first: the explanation is built only for events that fire.
      const v1::PatientView& view = in.view->Get(r.trigger_filter.view_parts());
      if (!r.trigger_filter.Evaluate(view, &event, nullptr)) continue;
      auto* trace = out->NewExplanation();
      r.trigger_filter.Evaluate(view, &event, trace);
      Candidate c{&r, absl::StrCat("event:", event.event_id()), trace};
      Consider(r, in, std::move(c), true, &fired, out);
    } else if (r.trigger == Trigger::kBecame) {
      // A `became` condition is re-evaluated on events that can change the sections it reads
      // (header-only conditions: every event); a change time alone makes is noticed at the next
      // such event — time-driven rules are absence and schedule triggers.
      const uint32_t parts = r.trigger_filter.view_parts();
      const uint32_t sections = parts & ~projections::kViewHeader;
      RuleMemoryRef m = memories.Get(r);
      const bool known = m.became() != v1::RuleMemory::HELD_UNKNOWN;
      if (known && !in.first_event && sections != 0 && (sections & changed) == 0) continue;
      const v1::PatientView& view = in.view->Get(parts);
      const bool now_held = r.trigger_filter.Evaluate(view, &event, nullptr);
      const bool was_held =
          known ? m.became() == v1::RuleMemory::HELD_TRUE : (in.first_event ? false : now_held);
      m.set_became(now_held ? v1::RuleMemory::HELD_TRUE : v1::RuleMemory::HELD_FALSE);
      if (was_held || !now_held) continue;
      auto* trace = out->NewExplanation();  // only for a transition: most change nothing
      r.trigger_filter.Evaluate(view, &event, trace);
      Candidate c{&r, absl::StrCat("became:", event.event_id()), trace};
      Consider(r, in, std::move(c), true, &fired, out);
    } else if (r.trigger == Trigger::kAbsence) {
      if (AbsenceMatches(r, in)) {
        MoveAbsence(r, in, event_s, &memories, out);
      } else if (event.has_enrollment() && memories.Get(r).absence_anchor_s() == 0) {
        MoveAbsence(r, in, event_s, &memories, out);  // counted from enrollment until a first one
      }
    } else if (r.trigger == Trigger::kDate) {
      // Only events that can move the date, and the first event the rule sees of a patient (a
      // rule added to the file arms for everyone at their next event): the others leave it be.
      if (!in.first_event && (r.date_parts & changed) == 0 && memories.Find(r).has_value()) {
        continue;
      }
      StepDate(r, in, memories.Get(r), &fired, out);
    } else if (r.trigger == Trigger::kSchedule) {
      RuleMemoryRef m = memories.Get(r);
      if (m.timer_due_s() == 0 && ScheduleApplies(r, in)) {
        SetTimer(m, r.rule.id(),
                 absl::ToUnixSeconds(NextLocalTime(in.now, r.schedule_minute_of_day, in.tz)), out);
      }
    }
  }
  // (A timer of a rule that has left the rule set is dropped when it falls due: DecideOnTimer.)
  Resolve(policy, in, std::move(fired), &memories, out);
}

void DecideOnTimer(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& in,
                   absl::string_view rule_id, int64_t due_s, v1::RulesState* state,
                   DecideOutput* out) {
  Memories memories(rules, state, in.memories);
  const CompiledRule* r = rules.Find(rule_id);
  std::optional<RuleMemoryRef> m = r != nullptr ? memories.Find(*r) : memories.FindRemoved(rule_id);
  if (!m.has_value() || m->timer_due_s() != due_s) return;  // moved since indexed
  SetTimer(*m, rule_id, 0, out);
  if (r == nullptr) return;
  std::vector<Candidate> fired;
  const auto& t = r->rule.trigger();
  if (t.has_absence()) {
    const int64_t anchor_s = m->absence_anchor_s();
    const int64_t true_due_s = anchor_s + absl::ToInt64Seconds(r->absence_after);
    if (true_due_s > absl::ToUnixSeconds(in.now)) {  // moved since it was armed
      SetTimer(*m, rule_id, true_due_s, out);
      return;
    }
    Candidate c{r, absl::StrCat("absence:", anchor_s), out->NewExplanation()};
    Consider(*r, in, std::move(c), true, &fired, out);
  } else if (t.has_schedule()) {
    if (!ScheduleApplies(*r, in)) return;  // left the programme, or hard-churned: paused
    // One firing per local day; misses of `when` are not recorded (they would be one decision
    // per patient per day).
    const absl::CivilDay day = projections::LocalDay(absl::FromUnixSeconds(due_s), in.tz);
    Candidate c{r, absl::StrCat("schedule:", projections::FormatCivilDay(day)),
                out->NewExplanation()};
    Consider(*r, in, std::move(c), false, &fired, out);
    SetTimer(*m, rule_id,
             absl::ToUnixSeconds(NextLocalTime(in.now, r->schedule_minute_of_day, in.tz)), out);
  } else if (t.has_date()) {
    StepDate(*r, in, *m, &fired, out);
  }
  Resolve(policy, in, std::move(fired), &memories, out);
}

void DecideOnTimersDue(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& in,
                       int64_t due_s, v1::RulesState* state, DecideOutput* out) {
  Memories memories(rules, state, in.memories);
  for (const int pos : rules.id_order()) {
    const CompiledRule& r = rules.rules()[pos];
    // Read before deciding: a decision may add rows, which a RuleMemoryRef does not outlive.
    std::optional<RuleMemoryRef> m = memories.Find(r);
    if (!m.has_value() || m->timer_due_s() != due_s) continue;
    DecideOnTimer(rules, policy, in, r.rule.id(), due_s, state, out);
  }
  // Rows of rules no longer in the set: their timers go, deciding nothing.
  for (int row = 0; row < state->memory_rule_size(); ++row) {
    if (state->memory_timer_due_s(row) != due_s) continue;
    if (rules.FindFingerprint(state->memory_rule(row)) >= 0) continue;
    state->set_memory_timer_due_s(row, 0);
    out->timer_changes.push_back({std::string(), due_s, 0});
  }
}

namespace {

// The id of the first experiment (file order) that holds this rule's command for this patient
// back, or null.
const std::string* HeldOutBy(const CompiledRule& rule, const DecideInput& in) {
  for (const CompiledRule::Holdout& h : rule.holdouts) {
    if (in.now < h.starts_at) continue;
    if (!h.program_id.empty() &&
        in.view->Get(projections::kViewHeader).program_id() != h.program_id) {
      continue;
    }
    if (AssignmentUnit(h.experiment_id, in.state->patient_id()) < h.share) return &h.experiment_id;
  }
  return nullptr;
}

void Resolve(const PolicyOptions& policy, const DecideInput& in, std::vector<Candidate> fired,
             Memories* memories, DecideOutput* out) {
  if (fired.empty()) return;
  v1::RulesState* state = memories->state();
  // Higher priority first; ties by rule id: deterministic arbitration under the caps. (Most
  // moments fire one rule, for which std::stable_sort would still allocate its buffer.)
  if (fired.size() > 1) {
    std::stable_sort(fired.begin(), fired.end(), [](const Candidate& a, const Candidate& b) {
      if (a.rule->rule.policy().priority() != b.rule->rule.policy().priority()) {
        return a.rule->rule.policy().priority() > b.rule->rule.policy().priority();
      }
      return a.rule->rule.id() < b.rule->rule.id();
    });
  }

  PruneDays(state, in.now, in.tz);
  const bool hard_churned = projections::HardChurned(*in.state, in.now);
  absl::InlinedVector<std::pair<int32_t, int>, 4> taken_in_this_round;  // (day, category)
  for (Candidate& c : fired) {
    const v1::Rule& rule = c.rule->rule;
    const v1::Policy& p = rule.policy();
    const bool to_patient = rule.action().has_reminder();
    v1::Decision* d = DecisionFor(*c.rule, in, c, out);
    auto suppress = [&](v1::Decision::Reason reason) {
      d->set_outcome(v1::Decision::SUPPRESSED);
      d->set_reason(reason);
    };

    if (to_patient && hard_churned) {
      suppress(v1::Decision::HARD_CHURNED);
      continue;
    }
    if (to_patient && p.category() != v1::CLINICAL) {
      const v1::ConsentView& consent = in.view->Get(projections::kViewConsent).consent();
      if (p.category() == v1::MARKETING && !consent.marketing_consent()) {
        suppress(v1::Decision::MARKETING_CONSENT);
        continue;
      }
      if (p.category() == v1::MARKETING && consent.marketing_sensitive()) {
        suppress(v1::Decision::MARKETING_SENSITIVE);
        continue;
      }
      if (p.category() == v1::CARE && !consent.care_reminders_consent()) {
        suppress(v1::Decision::CARE_CONSENT);
        continue;
      }
    }
    RuleMemoryRef memory = memories->Get(*c.rule);
    if (memory.last_fired_s() != 0 &&
        absl::FromUnixSeconds(memory.last_fired_s()) + FromProtoDuration(p.cooldown()) > in.now) {
      suppress(v1::Decision::COOLDOWN);
      continue;
    }
    // The patient's variant of the rule: its action, and how much later it goes.
    const CompiledRule::Variant* variant = VariantOf(*c.rule, in.state->patient_id());
    const v1::Action& action = variant != nullptr ? variant->action : rule.action();
    const std::vector<CompiledRule::Parameter>& parameters =
        variant != nullptr ? variant->parameters : c.rule->parameters;
    const absl::Time due = in.now + (variant != nullptr ? variant->delay : absl::ZeroDuration());
    absl::Time not_before = due;
    const absl::Time expires_at = due + FromProtoDuration(p.ttl());
    if (to_patient) {
      not_before = QuietHoursEnd(policy, due, in.tz);
      if (not_before >= expires_at) {
        suppress(v1::Decision::QUIET_HOURS_EXPIRED);
        continue;
      }
      const int32_t day = LocalDayNumber(not_before, in.tz);
      v1::DailyCount* sent = SentCounter(state, day, p.category());
      auto cap = policy.daily_cap.find(p.category());
      if (cap != policy.daily_cap.end() && sent->sent() >= cap->second) {
        const bool taken = std::find(taken_in_this_round.begin(), taken_in_this_round.end(),
                                     std::make_pair(day, static_cast<int>(p.category()))) !=
                           taken_in_this_round.end();
        suppress(taken ? v1::Decision::PRIORITY : v1::Decision::CAP);
        continue;
      }
      sent->set_sent(sent->sent() + 1);
      taken_in_this_round.emplace_back(day, p.category());
    }
    memory.set_last_fired_s(absl::ToUnixSeconds(in.now));

    v1::ReminderCommand* cmd = out->commands.Add();
    cmd->set_command_id(CommandId(rule.id(), rule.version(), in.state->patient_id(), c.trigger));
    cmd->set_patient_id(in.state->patient_id());
    cmd->set_category(p.category());
    out->AttachTimes(cmd, absl::ToUnixSeconds(not_before), absl::ToUnixSeconds(expires_at));
    cmd->set_rule_id(rule.id());
    cmd->set_rule_version(rule.version());
    if (in.event != nullptr) cmd->set_trigger_event_id(in.event->event_id());
    cmd->set_trigger(c.trigger);
    if (to_patient) {
      cmd->set_recipient(v1::ReminderCommand::PATIENT);
      cmd->set_automated(true);
      cmd->set_channel(action.reminder().channel());
      cmd->set_template_id(action.reminder().template_id());
      FillParameters(parameters, in.view->Get(c.rule->action_parts), in.event,
                     cmd->mutable_parameters());
    } else {
      cmd->set_recipient(v1::ReminderCommand::STAFF);
      const v1::PatientView& view =
          in.view->Get(c.rule->action_parts | projections::kViewAcquisition);
      cmd->set_staff_id(view.acquisition().current_staff_id());  // the assigned health manager
      cmd->set_template_id(action.task().template_id());
      FillParameters(parameters, view, in.event, cmd->mutable_parameters());
    }
    if (variant != nullptr) {
      cmd->set_variant(variant->id);
      d->set_variant(variant->id);
    }
    d->set_command_id(cmd->command_id());
    // An experiment's holdout: decided as for everyone (caps and cooldown counted as if sent,
    // so both arms are decided alike), recorded with the command, not sent.
    if (const std::string* experiment = HeldOutBy(*c.rule, in)) {
      d->set_outcome(v1::Decision::SUPPRESSED);
      d->set_reason(v1::Decision::HOLDOUT);
      d->set_experiment_id(*experiment);
      d->mutable_withheld()->CopyFrom(*cmd);  // without the explanation: the decision holds it
      out->RemoveLastCommand();               // not sent
      continue;
    }
    out->Attach(cmd, c.explanation);  // the decision's (DecisionFor)
    d->set_outcome(not_before > in.now ? v1::Decision::DEFERRED : v1::Decision::FIRED);
  }
}

}  // namespace
}  // namespace tend
