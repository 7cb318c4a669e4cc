#include "engine/decide.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/event_codec.h"
#include "projections/churn.h"
#include "projections/patient.h"

namespace tend {
namespace {

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

uint64_t Mix(uint64_t z) {  // splitmix64 finaliser (Steele, Lea & Flood 2014)
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(uint64_t h, absl::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;  // FNV-1a 64-bit prime (Fowler, Noll, Vo)
  }
  return h;
}

bool InQuietHours(const PolicyOptions& p, int minute) {
  if (p.quiet_start_minute == p.quiet_end_minute) return false;
  if (p.quiet_start_minute < p.quiet_end_minute) {
    return minute >= p.quiet_start_minute && minute < p.quiet_end_minute;
  }
  return minute >= p.quiet_start_minute || minute < p.quiet_end_minute;
}

std::string DayKey(absl::Time t, const absl::TimeZone& tz, v1::Category category) {
  return absl::StrCat(absl::FormatCivilTime(absl::ToCivilDay(t, tz)), "/",
                      v1::Category_Name(category));
}

// Drops cap counters of days before yesterday (relative to `now`).
void PruneDays(v1::RulesState* state, absl::Time now, const absl::TimeZone& tz) {
  const std::string yesterday = absl::FormatCivilTime(absl::ToCivilDay(now, tz) - 1);
  auto* m = state->mutable_sent_per_day();
  for (auto it = m->begin(); it != m->end();) {
    // Keys start with YYYY-MM-DD, which sorts as text.
    it = it->first.substr(0, 10) < yesterday ? m->erase(it) : std::next(it);
  }
}

struct Candidate {
  const CompiledRule* rule;
  std::string trigger;
  v1::Explanation explanation;
};

void AddChecks(const std::vector<ConditionTrace>& trace, v1::Explanation* e) {
  for (const auto& t : trace) {
    auto* c = e->add_checks();
    c->set_field(t.field);
    c->set_op(t.op);
    c->set_expected(t.expected);
    c->set_actual(t.actual);
    c->set_held(t.held);
  }
}

v1::Decision DecisionFor(const CompiledRule& r, const DecideInput& in, const Candidate& c) {
  v1::Decision d;
  d.set_rule_id(r.rule.id());
  d.set_rule_version(r.rule.version());
  d.set_patient_id(in.state->patient_id());
  *d.mutable_at() = ToProto(in.now);
  d.set_trigger(c.trigger);
  *d.mutable_explanation() = c.explanation;
  return d;
}

// Evaluates the rule's `when`; a candidate for the policies when it holds, else a CONDITIONS
// decision (when `record_misses`).
void Consider(const CompiledRule& r, const DecideInput& in, Candidate c, bool record_misses,
              std::vector<Candidate>* fired, DecideOutput* out) {
  std::vector<ConditionTrace> trace;
  const bool holds = r.when.Evaluate(in.view->Get(r.when.view_parts()), in.event, &trace);
  AddChecks(trace, &c.explanation);
  if (holds) {
    fired->push_back(std::move(c));
  } else if (record_misses) {
    v1::Decision d = DecisionFor(r, in, c);
    d.set_outcome(v1::Decision::SUPPRESSED);
    d.set_reason(v1::Decision::CONDITIONS);
    out->decisions.push_back(std::move(d));
  }
}

void SetTimer(const std::string& rule_id, int64_t due_s, v1::RulesState* state,
              DecideOutput* out) {
  auto* timers = state->mutable_timer_due_s();
  auto it = timers->find(rule_id);
  const int64_t old = it == timers->end() ? 0 : it->second;
  if (old == due_s) return;
  if (due_s == 0) {
    timers->erase(it);
  } else {
    (*timers)[rule_id] = due_s;
  }
  out->timer_changes.push_back({rule_id, old, due_s});
}

bool AbsenceMatches(const CompiledRule& r, const DecideInput& in) {
  const std::string& kind = r.rule.trigger().absence().kind();
  if (kind == "activity") {
    if (!projections::IsPatientInitiated(*in.event)) return false;
  } else if (kind != EventTypeName(*in.event)) {
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
                 v1::RulesState* state, DecideOutput* out) {
  auto* anchors = state->mutable_absence_anchor_s();
  auto it = anchors->find(r.rule.id());
  if (it != anchors->end() && it->second >= anchor_s) return;  // not newer: nothing moves
  (*anchors)[r.rule.id()] = anchor_s;
  const int64_t due_s = anchor_s + absl::ToInt64Seconds(r.absence_after);
  if (due_s > absl::ToUnixSeconds(in.now) && !state->timer_due_s().contains(r.rule.id())) {
    SetTimer(r.rule.id(), due_s, state, out);
  }
}

bool ScheduleApplies(const CompiledRule& r, const DecideInput& in) {
  const std::string& program = r.rule.trigger().schedule().program_id();
  return (program.empty() || in.state->enrollment().program_id() == program) &&
         !projections::HardChurned(*in.state, in.now);
}

// Applies the global policies to the firings of one moment, highest priority first.
void Resolve(const PolicyOptions& policy, const DecideInput& in, std::vector<Candidate> fired,
             v1::RulesState* state, DecideOutput* out);


void FillParameters(const google::protobuf::Map<std::string, std::string>& in,
                    const v1::PatientView& view, const v1::Event* event,
                    google::protobuf::Map<std::string, std::string>* out) {
  for (const auto& [name, value] : in) {
    if (value.size() >= 2 && value.front() == '{' && value.back() == '}') {
      auto path = ResolveFieldPath(value.substr(1, value.size() - 2));  // checked at load
      (*out)[name] = path.ok() ? ReadField(*path, view, event).ToString() : "";
    } else {
      (*out)[name] = value;
    }
  }
}

}  // namespace

std::string CommandId(absl::string_view rule_id, int rule_version, absl::string_view patient_id,
                      absl::string_view trigger) {
  const std::string fields =
      absl::StrCat(rule_id, "\x1f", rule_version, "\x1f", patient_id, "\x1f", trigger);
  const uint64_t a = Mix(Fnv1a(0xcbf29ce484222325ULL, fields));  // FNV-1a 64 offset basis
  const uint64_t b = Mix(Fnv1a(0x84222325cbf29ce4ULL, fields));
  return absl::StrFormat("%016x%016x", a, b);
}

absl::Time QuietHoursEnd(const PolicyOptions& p, absl::Time t, const absl::TimeZone& tz) {
  const absl::CivilMinute local = absl::ToCivilMinute(t, tz);
  const int minute = local.hour() * 60 + local.minute();
  if (!InQuietHours(p, minute)) return t;
  absl::CivilDay day = absl::CivilDay(local);
  // Past the start on a window that crosses midnight: it ends tomorrow.
  if (p.quiet_start_minute > p.quiet_end_minute && minute >= p.quiet_start_minute) day += 1;
  const absl::CivilMinute end(day.year(), day.month(), day.day(), p.quiet_end_minute / 60,
                              p.quiet_end_minute % 60);
  // absl resolves a local time skipped or repeated by a DST change to a real instant.
  return absl::FromCivil(end, tz);
}

absl::Time NextLocalTime(absl::Time t, int minute_of_day, const absl::TimeZone& tz) {
  absl::CivilDay day = absl::ToCivilDay(t, tz);
  for (int i = 0; i < 3; ++i, ++day) {
    const absl::CivilMinute at(day.year(), day.month(), day.day(), minute_of_day / 60,
                               minute_of_day % 60);
    const absl::Time next = absl::FromCivil(at, tz);
    if (next > t) return next;
  }
  return t + absl::Hours(24);  // unreachable: tomorrow's occurrence is always after t
}

const v1::PatientView& LazyView::Get(uint32_t parts) {
  const uint32_t missing = parts & ~computed_;
  if (missing != 0 || !header_) {
    projections::ComputeViewParts(config_, state_, as_of_, missing, &view_);
    computed_ |= missing;
    header_ = true;
  }
  return view_;
}

void DecideOnEvent(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& in,
                   v1::RulesState* state, DecideOutput* out) {
  const v1::Event& event = *in.event;
  const absl::string_view kind = EventTypeName(event);
  const uint32_t changed = projections::ViewPartsChangedBy(event);
  const int64_t now_s = absl::ToUnixSeconds(in.now);
  // An event's time on the patient's calendar, never later than the partition clock.
  const int64_t event_s = std::min<int64_t>(event.occurred_at().seconds(), now_s);
  std::vector<Candidate> fired;
  for (const CompiledRule& r : rules.rules()) {
    const auto& t = r.rule.trigger();
    if (t.has_event()) {
      if (t.event().kind() != kind) continue;
      std::vector<ConditionTrace> trace;
      if (!r.trigger_filter.Evaluate(in.view->Get(r.trigger_filter.view_parts()), &event,
                                     &trace)) {
        continue;
      }
      Candidate c{&r, absl::StrCat("event:", event.event_id()), {}};
      AddChecks(trace, &c.explanation);
      Consider(r, in, std::move(c), true, &fired, out);
    } else if (t.has_became()) {
      // A `became` condition is re-evaluated on events that can change the sections it reads
      // (header-only conditions: every event); a change time alone makes is noticed at the next
      // such event — time-driven rules are absence and schedule triggers.
      const uint32_t parts = r.trigger_filter.view_parts();
      auto* held = state->mutable_became_held();
      auto it = held->find(r.rule.id());
      const bool known = it != held->end();
      if (known && !in.first_event && parts != 0 && (parts & changed) == 0) continue;
      std::vector<ConditionTrace> trace;
      const bool now_held = r.trigger_filter.Evaluate(in.view->Get(parts), &event, &trace);
      const bool was_held = known ? it->second : (in.first_event ? false : now_held);
      if (!known || it->second != now_held) (*held)[r.rule.id()] = now_held;
      if (was_held || !now_held) continue;
      Candidate c{&r, absl::StrCat("became:", event.event_id()), {}};
      AddChecks(trace, &c.explanation);
      Consider(r, in, std::move(c), true, &fired, out);
    } else if (t.has_absence()) {
      if (AbsenceMatches(r, in)) {
        MoveAbsence(r, in, event_s, state, out);
      } else if (event.has_enrollment() && !state->absence_anchor_s().contains(r.rule.id())) {
        MoveAbsence(r, in, event_s, state, out);  // counted from enrollment until a first one
      }
    } else if (t.has_schedule()) {
      if (!state->timer_due_s().contains(r.rule.id()) && ScheduleApplies(r, in)) {
        SetTimer(r.rule.id(),
                 absl::ToUnixSeconds(NextLocalTime(in.now, r.schedule_minute_of_day, in.tz)),
                 state, out);
      }
    }
  }
  // Timers of rules no longer in the rule set go.
  std::vector<std::string> gone;
  for (const auto& [id, due] : state->timer_due_s()) {
    if (rules.Find(id) == nullptr) gone.push_back(id);
  }
  for (const auto& id : gone) SetTimer(id, 0, state, out);
  Resolve(policy, in, std::move(fired), state, out);
}

void DecideOnTimer(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& in,
                   absl::string_view rule_id, int64_t due_s, v1::RulesState* state,
                   DecideOutput* out) {
  auto it = state->timer_due_s().find(std::string(rule_id));
  if (it == state->timer_due_s().end() || it->second != due_s) return;  // moved since indexed
  const std::string id(rule_id);
  SetTimer(id, 0, state, out);
  const CompiledRule* r = rules.Find(rule_id);
  if (r == nullptr) return;
  std::vector<Candidate> fired;
  const auto& t = r->rule.trigger();
  if (t.has_absence()) {
    const auto a = state->absence_anchor_s().find(id);
    const int64_t anchor_s = a == state->absence_anchor_s().end() ? 0 : a->second;
    const int64_t true_due_s = anchor_s + absl::ToInt64Seconds(r->absence_after);
    if (true_due_s > absl::ToUnixSeconds(in.now)) {  // moved since it was armed
      SetTimer(id, true_due_s, state, out);
      return;
    }
    Candidate c{r, absl::StrCat("absence:", anchor_s), {}};
    Consider(*r, in, std::move(c), true, &fired, out);
  } else if (t.has_schedule()) {
    if (!ScheduleApplies(*r, in)) return;  // left the programme, or hard-churned: paused
    // One firing per local day; misses of `when` are not recorded (they would be one decision
    // per patient per day).
    const absl::CivilDay day = absl::ToCivilDay(absl::FromUnixSeconds(due_s), in.tz);
    Candidate c{r, absl::StrCat("schedule:", absl::FormatCivilTime(day)), {}};
    Consider(*r, in, std::move(c), false, &fired, out);
    SetTimer(id, absl::ToUnixSeconds(NextLocalTime(in.now, r->schedule_minute_of_day, in.tz)),
             state, out);
  }
  Resolve(policy, in, std::move(fired), state, out);
}

namespace {

void Resolve(const PolicyOptions& policy, const DecideInput& in, std::vector<Candidate> fired,
             v1::RulesState* state, DecideOutput* out) {
  if (fired.empty()) return;
  // Higher priority first; ties by rule id: deterministic arbitration under the caps.
  std::stable_sort(fired.begin(), fired.end(), [](const Candidate& a, const Candidate& b) {
    if (a.rule->rule.policy().priority() != b.rule->rule.policy().priority()) {
      return a.rule->rule.policy().priority() > b.rule->rule.policy().priority();
    }
    return a.rule->rule.id() < b.rule->rule.id();
  });

  PruneDays(state, in.now, in.tz);
  const bool hard_churned = projections::HardChurned(*in.state, in.now);
  std::map<std::string, bool> taken_in_this_round;  // day/category keys filled by this moment
  for (Candidate& c : fired) {
    const v1::Rule& rule = c.rule->rule;
    const v1::Policy& p = rule.policy();
    const bool to_patient = rule.action().has_reminder();
    v1::Decision d = DecisionFor(*c.rule, in, c);
    auto suppress = [&](v1::Decision::Reason reason) {
      d.set_outcome(v1::Decision::SUPPRESSED);
      d.set_reason(reason);
      out->decisions.push_back(d);
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
    const auto last = state->last_fired_s().find(rule.id());
    if (last != state->last_fired_s().end() &&
        absl::FromUnixSeconds(last->second) + FromProto(p.cooldown()) > in.now) {
      suppress(v1::Decision::COOLDOWN);
      continue;
    }
    absl::Time not_before = in.now;
    const absl::Time expires_at = in.now + FromProto(p.ttl());
    if (to_patient) {
      not_before = QuietHoursEnd(policy, in.now, in.tz);
      if (not_before >= expires_at) {
        suppress(v1::Decision::QUIET_HOURS_EXPIRED);
        continue;
      }
      const std::string day = DayKey(not_before, in.tz, p.category());
      auto cap = policy.daily_cap.find(p.category());
      const int sent = state->sent_per_day().count(day) ? state->sent_per_day().at(day) : 0;
      if (cap != policy.daily_cap.end() && sent >= cap->second) {
        suppress(taken_in_this_round.count(day) ? v1::Decision::PRIORITY : v1::Decision::CAP);
        continue;
      }
      (*state->mutable_sent_per_day())[day] = sent + 1;
      taken_in_this_round[day] = true;
    }
    (*state->mutable_last_fired_s())[rule.id()] = absl::ToUnixSeconds(in.now);

    v1::ReminderCommand cmd;
    cmd.set_command_id(CommandId(rule.id(), rule.version(), in.state->patient_id(), c.trigger));
    cmd.set_patient_id(in.state->patient_id());
    cmd.set_category(p.category());
    *cmd.mutable_not_before() = ToProto(not_before);
    *cmd.mutable_expires_at() = ToProto(expires_at);
    cmd.set_rule_id(rule.id());
    cmd.set_rule_version(rule.version());
    if (in.event != nullptr) cmd.set_trigger_event_id(in.event->event_id());
    cmd.set_trigger(c.trigger);
    *cmd.mutable_explanation() = c.explanation;
    if (to_patient) {
      cmd.set_recipient(v1::ReminderCommand::PATIENT);
      cmd.set_automated(true);
      cmd.set_channel(rule.action().reminder().channel());
      cmd.set_template_id(rule.action().reminder().template_id());
      FillParameters(rule.action().reminder().parameters(),
                     in.view->Get(c.rule->action_parts), in.event, cmd.mutable_parameters());
    } else {
      cmd.set_recipient(v1::ReminderCommand::STAFF);
      const v1::PatientView& view =
          in.view->Get(c.rule->action_parts | projections::kViewAcquisition);
      cmd.set_staff_id(view.acquisition().current_staff_id());  // the assigned health manager
      cmd.set_template_id(rule.action().task().template_id());
      FillParameters(rule.action().task().parameters(), view, in.event, cmd.mutable_parameters());
    }
    d.set_outcome(not_before > in.now ? v1::Decision::DEFERRED : v1::Decision::FIRED);
    d.set_command_id(cmd.command_id());
    out->decisions.push_back(std::move(d));
    out->commands.push_back(std::move(cmd));
  }
}

}  // namespace
}  // namespace tend
