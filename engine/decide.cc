#include "engine/decide.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/event_codec.h"

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

void DecideOnEvent(const RuleSet& rules, const PolicyOptions& policy, const DecideInput& in,
                   v1::RulesState* state, DecideOutput* out) {
  const v1::PatientView& after = *in.after;
  const std::string kind(EventTypeName(*in.event));
  std::vector<Candidate> fired;
  for (const CompiledRule& r : rules.rules()) {
    const auto& t = r.rule.trigger();
    std::vector<ConditionTrace> trace;
    std::string trigger;
    if (t.has_event()) {
      if (t.event().kind() != kind || !r.trigger_filter.Evaluate(after, in.event, &trace)) continue;
      trigger = absl::StrCat("event:", in.event->event_id());
    } else if (t.has_became()) {
      if (in.before != nullptr && r.trigger_filter.Evaluate(*in.before, in.event, nullptr)) continue;
      if (!r.trigger_filter.Evaluate(after, in.event, &trace)) continue;
      trigger = absl::StrCat("became:", in.event->event_id());
    } else {
      continue;  // absence and schedule rules fire from timers
    }
    Candidate c{&r, trigger, {}};
    AddChecks(trace, &c.explanation);
    trace.clear();
    const bool holds = r.when.Evaluate(after, in.event, &trace);
    AddChecks(trace, &c.explanation);
    if (!holds) {
      v1::Decision d;
      d.set_rule_id(r.rule.id());
      d.set_rule_version(r.rule.version());
      d.set_patient_id(after.patient_id());
      *d.mutable_at() = ToProto(in.now);
      d.set_outcome(v1::Decision::SUPPRESSED);
      d.set_reason(v1::Decision::CONDITIONS);
      d.set_trigger(trigger);
      *d.mutable_explanation() = c.explanation;
      out->decisions.push_back(std::move(d));
      continue;
    }
    fired.push_back(std::move(c));
  }
  // Higher priority first; ties by rule id: deterministic arbitration under the caps.
  std::stable_sort(fired.begin(), fired.end(), [](const Candidate& a, const Candidate& b) {
    if (a.rule->rule.policy().priority() != b.rule->rule.policy().priority()) {
      return a.rule->rule.policy().priority() > b.rule->rule.policy().priority();
    }
    return a.rule->rule.id() < b.rule->rule.id();
  });

  PruneDays(state, in.now, in.tz);
  std::map<std::string, bool> taken_in_this_round;  // day/category keys filled by this event
  for (Candidate& c : fired) {
    const v1::Rule& rule = c.rule->rule;
    const v1::Policy& p = rule.policy();
    const bool to_patient = rule.action().has_reminder();
    v1::Decision d;
    d.set_rule_id(rule.id());
    d.set_rule_version(rule.version());
    d.set_patient_id(after.patient_id());
    *d.mutable_at() = ToProto(in.now);
    d.set_trigger(c.trigger);
    *d.mutable_explanation() = c.explanation;
    auto suppress = [&](v1::Decision::Reason reason) {
      d.set_outcome(v1::Decision::SUPPRESSED);
      d.set_reason(reason);
      out->decisions.push_back(d);
    };

    if (to_patient && after.churn().stage() == v1::ChurnView::HARD_CHURNED) {
      suppress(v1::Decision::HARD_CHURNED);
      continue;
    }
    if (p.category() == v1::MARKETING && !after.consent().marketing_consent()) {
      suppress(v1::Decision::MARKETING_CONSENT);
      continue;
    }
    if (p.category() == v1::MARKETING && after.consent().marketing_sensitive()) {
      suppress(v1::Decision::MARKETING_SENSITIVE);
      continue;
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
    cmd.set_command_id(CommandId(rule.id(), rule.version(), after.patient_id(), c.trigger));
    cmd.set_patient_id(after.patient_id());
    cmd.set_category(p.category());
    *cmd.mutable_not_before() = ToProto(not_before);
    *cmd.mutable_expires_at() = ToProto(expires_at);
    cmd.set_rule_id(rule.id());
    cmd.set_rule_version(rule.version());
    cmd.set_trigger_event_id(in.event->event_id());
    cmd.set_trigger(c.trigger);
    *cmd.mutable_explanation() = c.explanation;
    if (to_patient) {
      cmd.set_recipient(v1::ReminderCommand::PATIENT);
      cmd.set_automated(true);
      cmd.set_channel(rule.action().reminder().channel());
      cmd.set_template_id(rule.action().reminder().template_id());
      FillParameters(rule.action().reminder().parameters(), after, in.event,
                     cmd.mutable_parameters());
    } else {
      cmd.set_recipient(v1::ReminderCommand::STAFF);
      cmd.set_staff_id(in.staff_id);
      cmd.set_template_id(rule.action().task().template_id());
      FillParameters(rule.action().task().parameters(), after, in.event, cmd.mutable_parameters());
    }
    d.set_outcome(not_before > in.now ? v1::Decision::DEFERRED : v1::Decision::FIRED);
    d.set_command_id(cmd.command_id());
    out->decisions.push_back(std::move(d));
    out->commands.push_back(std::move(cmd));
  }
}

}  // namespace tend
