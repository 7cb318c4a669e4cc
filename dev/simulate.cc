#include "dev/simulate.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "base/hash.h"
#include "base/status.h"
#include "events/codec.h"

namespace tend {
namespace {

// splitmix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"):
// a tiny, well-mixed generator whose output is identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    return SplitMix64Finalize(s_ += kSplitMix64Gamma);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  bool Chance(double p) { return Uniform() < p; }
  int Int(int lo, int hi) {  // [lo, hi]
    return lo + static_cast<int>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  double Normal(double mean, double sd) {  // Box-Muller
    double u1 = std::max(Uniform(), 1e-12), u2 = Uniform();
    return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
  int Poisson(double lambda) {  // Knuth's multiplication method; lambda is small here
    double l = std::exp(-lambda), p = 1.0;
    int k = 0;
    do {
      ++k;
      p *= Uniform();
    } while (p > l);
    return k - 1;
  }
  template <typename T, size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Next() % N];
  }

 private:
  uint64_t s_;
};

enum class Persona { kEngaged, kFading, kSilent, kChurned };

struct SimPatient {
  uint64_t index;  // in the cohort: seeds the patient's streams (CohortOptions.only skips others)
  std::string id;
  Persona persona;
  int start_day;  // day index of the first scan
  int churn_day;  // kChurned: day the contact is removed
  absl::TimeZone tz;
  std::string staff_id;
  std::string channel_id;
  std::string program_id;
  bool converted = false;
  bool consent_withdrawn = false;
  int next_purchase_day = -1;
  int64_t event_counter = 0;
  int scan_minute = 0;  // local minute of day of the first scan
  bool gone = false;  // removed the contact: no more events
  double check_in_factor = 1;  // CohortOptions.effect_*: below 1 when held out
  int64_t extra_counter = 0;   // ids of the coupon and profile events ("x-<id>-<n>")
  struct Coupon {
    std::string id;
    int redeem_day;  // -1: never redeemed
  };
  std::vector<Coupon> coupons;
};

struct Pending {
  int64_t recorded_ns;
  int64_t seq;  // tie-break: generation order, for determinism
  v1::Event event;
};
struct PendingLater {
  bool operator()(const Pending* a, const Pending* b) const {
    return a->recorded_ns != b->recorded_ns ? a->recorded_ns > b->recorded_ns : a->seq > b->seq;
  }
};

constexpr const char* kZones[] = {"Asia/Shanghai", "Asia/Shanghai", "Asia/Shanghai",
                                  "Asia/Shanghai", "Asia/Shanghai", "Asia/Shanghai",
                                  "Asia/Hong_Kong", "Asia/Taipei",  "America/Los_Angeles",
                                  "Europe/London"};
constexpr const char* kChannels[] = {"pharmacy-counter", "ad-campaign", "kol-article",
                                     "hospital-referral", "pharmacy-counter"};
constexpr const char* kPrograms[] = {"glucose-camp-28d", "bp-care-1y", "cognitive-training-1y"};
constexpr const char* kKeywords[] = {"dose", "sugar", "thanks", "price", "side-effect", "diet"};
constexpr const char* kIngredients[] = {"metformin", "amlodipine", "atorvastatin"};

// xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx from two splitmix64 outputs of the patient's number.
std::string LongPatientId(uint64_t index) {
  const uint64_t a = SplitMix64Finalize(index * 2 + kSplitMix64Gamma);
  const uint64_t b = SplitMix64Finalize(index * 2 + 1 + kSplitMix64Gamma);
  return absl::StrFormat("%08x-%04x-4%03x-8%03x-%012x", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                         b >> 52, b & 0xffffffffffffULL);
}

class Simulator {
 public:
  Simulator(const CohortOptions& o, const std::function<absl::Status(const v1::Event&)>& emit)
      : o_(o), emit_(emit), start_(o.end - absl::Hours(24) * o.days) {}
  ~Simulator() {
    while (!queue_.empty()) {
      delete queue_.top();
      queue_.pop();
    }
  }

  absl::Status Run() {
    Rng setup(o_.seed);
    patients_.reserve(o_.patients);
    for (int i = 0; i < o_.patients; ++i) {
      SimPatient p;
      p.index = static_cast<uint64_t>(i);
      p.id = o_.long_ids ? LongPatientId(p.index) : absl::StrFormat("p%07d", i);
      // Every patient draws from the setup stream, included or not: the same draws as a whole
      // cohort's.
      double r = setup.Uniform();
      p.persona = r < 0.35 ? Persona::kEngaged : r < 0.65 ? Persona::kFading
                : r < 0.85 ? Persona::kSilent : Persona::kChurned;
      p.start_day = setup.Chance(o_.initial_share) ? 0 : setup.Int(0, o_.days - 1);
      p.churn_day = p.start_day + setup.Int(10, 60);
      const char* zone = setup.Pick(kZones);
      const int staff = setup.Int(1, 40);
      p.channel_id = setup.Pick(kChannels);
      p.program_id = setup.Pick(kPrograms);
      if (o_.only && !o_.only(p.id)) continue;
      absl::LoadTimeZone(zone, &p.tz);
      p.staff_id = absl::StrFormat("staff-%03d", staff);
      p.check_in_factor = !o_.effect_experiment.empty() &&
                                  AssignmentUnit(o_.effect_experiment, p.id) < o_.effect_holdout
                              ? 1 - o_.effect_check_in_drop
                              : 1.0;
      patients_.push_back(std::move(p));
    }
    for (int day = 0; day < o_.days; ++day) {
      absl::Time day_start = start_ + absl::Hours(24) * day;
      for (SimPatient& p : patients_) {
        // One stream per (patient, day) keeps a patient's history independent of cohort size
        // and of the patients left out (CohortOptions.only).
        Rng rng(o_.seed * kFnv1a64Prime ^ (p.index << 20) ^ static_cast<uint64_t>(day));
        SimulateDay(&p, day, day_start, &rng);
        // Coupons and profiles from streams of their own: the events above are the same with
        // or without them.
        Rng extra(o_.seed * kFnv1a64Prime ^ (p.index << 20) ^ static_cast<uint64_t>(day) ^
                  0x5eed0c0d0000000ULL);
        SimulateExtras(&p, day, &extra);
      }
      // Day d+1's local calendar day can start up to 24 h before its UTC start (time zones from
      // UTC-12 to UTC+14), so only what was recorded before day d's UTC start is final.
      TEND_RETURN_IF_ERROR(Drain(day_start));
    }
    return Drain(absl::InfiniteFuture());
  }

 private:
  absl::Status Drain(absl::Time before) {
    CopyDuplicates();
    int64_t limit = before == absl::InfiniteFuture() ? INT64_MAX : absl::ToUnixNanos(before);
    while (!queue_.empty() && queue_.top()->recorded_ns < limit) {
      std::unique_ptr<Pending> p(queue_.top());
      queue_.pop();
      if (absl::FromUnixNanos(p->recorded_ns) > o_.end) continue;  // not yet recorded at `end`
      TEND_RETURN_IF_ERROR(emit_(p->event));
    }
    return absl::OkStatus();
  }

  // A new event for `p` at local time-of-day `minute_of_day` on `day`.
  // `from_device`: recorded from a phone, which may be offline and upload late; scans and
  // enrollments come from server callbacks and are recorded within seconds.
  v1::Event* NewEvent(SimPatient* p, int day, int minute_of_day, Rng* rng,
                      bool from_device = true, bool extra = false) {
    // Nothing happens before the first scan: on the first day, later events follow it.
    if (day == p->start_day && p->event_counter >= 2 && minute_of_day <= p->scan_minute + 2) {
      minute_of_day = p->scan_minute + 4 + rng->Int(0, 60);
    }
    absl::CivilDay civil = absl::ToCivilDay(start_ + absl::Hours(24) * day, p->tz);
    absl::Time occurred =
        absl::FromCivil(absl::CivilMinute(civil.year(), civil.month(), civil.day(),
                                          minute_of_day / 60, minute_of_day % 60),
                        p->tz) +
        absl::Seconds(rng->Int(0, 59));
    // Most records arrive within seconds; 3% are uploaded late (offline phones).
    absl::Duration delay = from_device && rng->Chance(0.03) ? absl::Minutes(rng->Int(60, 36 * 60))
                                             : absl::Seconds(rng->Int(1, 30));
    auto* pending = new Pending{absl::ToUnixNanos(occurred + delay), seq_++, {}};
    v1::Event& e = pending->event;
    e.set_event_id(extra ? absl::StrFormat("x-%s-%d", p->id, p->extra_counter++)
                         : absl::StrFormat("e-%s-%d", p->id, p->event_counter++));
    e.set_patient_id(p->id);
    e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(occurred));
    e.mutable_recorded_at()->set_seconds(pending->recorded_ns / 1'000'000'000);
    e.mutable_recorded_at()->set_nanos(static_cast<int32_t>(pending->recorded_ns % 1'000'000'000));
    e.set_source("simulator");
    queue_.push(pending);
    if (rng->Chance(o_.duplicate_rate)) {  // a client retry: the same record again, a bit later
      auto* dup = new Pending{pending->recorded_ns + 1'000'000'000LL * rng->Int(1, 10), seq_++, {}};
      queue_.push(dup);
      duplicates_.push_back({pending, dup});
    }
    return &e;
  }

  // Bodies are filled after NewEvent returns; duplicates copy them here, before any is emitted.
  void CopyDuplicates() {
    for (auto& [original, dup] : duplicates_) {
      dup->event = original->event;
      dup->event.mutable_recorded_at()->set_seconds(dup->recorded_ns / 1'000'000'000);
      dup->event.mutable_recorded_at()->set_nanos(
          static_cast<int32_t>(dup->recorded_ns % 1'000'000'000));
    }
    duplicates_.clear();
  }

  double CheckInProbability(const SimPatient& p, int age) const {
    switch (p.persona) {
      case Persona::kEngaged: return 0.8;
      case Persona::kFading: return 0.8 * std::exp2(-age / 14.0);
      case Persona::kSilent: return age < 7 ? 0.3 : 0.01;
      case Persona::kChurned: return 0.7 * std::exp2(-age / 10.0);
    }
    return 0;
  }

  void SimulateDay(SimPatient* p, int day, absl::Time day_start, Rng* rng) {
    if (day < p->start_day || p->gone) return;
    int age = day - p->start_day;
    if (age == 0) {
      int minute = rng->Int(8 * 60, 20 * 60);
      p->scan_minute = minute;
      auto* scan = NewEvent(p, day, minute, rng, /*from_device=*/false)->mutable_scan();
      scan->set_code_id(absl::StrCat("qr-", p->channel_id, "-", p->staff_id));
      scan->set_channel_id(p->channel_id);
      scan->set_staff_id(p->staff_id);
      auto* enroll =
          NewEvent(p, day, minute + 2, rng, /*from_device=*/false)->mutable_enrollment();
      enroll->set_program_id(p->program_id);
      enroll->set_time_zone(std::string(p->tz.name()));
    }
    if (p->persona == Persona::kChurned && day == p->churn_day) {
      NewEvent(p, day, rng->Int(9 * 60, 21 * 60), rng)->mutable_contact_removed()->set_staff_id(
          p->staff_id);
      p->gone = true;
      return;
    }
    double engagement = CheckInProbability(*p, age);
    if (rng->Chance(engagement * p->check_in_factor)) {
      int checkins = rng->Chance(0.3) ? 2 : 1;
      for (int c = 0; c < checkins; ++c) AddCheckIn(p, day, rng);
    }
    // Patients talk more early on and when engaged; staff reach out to everyone.
    int patient_msgs = rng->Poisson(engagement * (age < 7 ? 1.2 : 0.4));
    for (int m = 0; m < patient_msgs; ++m) {
      auto* msg = NewEvent(p, day, rng->Int(7 * 60, 22 * 60), rng)->mutable_message();
      msg->set_direction(v1::Message::PATIENT_TO_STAFF);
      msg->set_staff_id(p->staff_id);
      if (rng->Chance(0.3)) msg->add_keywords(rng->Pick(kKeywords));
    }
    int staff_msgs = rng->Poisson(age < 7 ? 0.8 : 0.25);
    for (int m = 0; m < staff_msgs; ++m) {
      auto* msg = NewEvent(p, day, rng->Int(9 * 60, 18 * 60), rng)->mutable_message();
      msg->set_direction(v1::Message::STAFF_TO_PATIENT);
      msg->set_staff_id(p->staff_id);
    }
    MaybePurchase(p, day, age, engagement, rng);
    if (!p->consent_withdrawn && rng->Chance(0.0008)) {
      p->consent_withdrawn = true;
      auto* c = NewEvent(p, day, rng->Int(9 * 60, 21 * 60), rng)->mutable_consent_changed();
      c->set_purpose(v1::ConsentChanged::MARKETING);
      c->set_granted(false);
    }
  }

  // The birthday (60% tell it, right after enrolling), and coupons from campaigns: about one a
  // month, valid for 7-14 days, 35% redeemed before they expire.
  void SimulateExtras(SimPatient* p, int day, Rng* rng) {
    if (day < p->start_day || p->gone) return;
    if (day == p->start_day && rng->Chance(0.6)) {
      const int month = rng->Int(1, 12);
      auto* profile = NewEvent(p, day, std::min(p->scan_minute + 3, 23 * 60 + 59), rng,
                               /*from_device=*/false, /*extra=*/true)
                          ->mutable_profile_updated();
      profile->set_birth_month(month);
      profile->set_birth_day(rng->Int(1, BirthDaysInMonth(month)));
    }
    for (const SimPatient::Coupon& c : p->coupons) {
      if (c.redeem_day != day) continue;
      NewEvent(p, day, rng->Int(9 * 60, 21 * 60), rng, /*from_device=*/true, /*extra=*/true)
          ->mutable_coupon_redeemed()
          ->set_coupon_id(c.id);
    }
    if (day > p->start_day && rng->Chance(1.0 / 30)) {
      const int valid = rng->Int(7, 14);
      auto* e = NewEvent(p, day, rng->Int(10 * 60, 18 * 60), rng, /*from_device=*/false,
                         /*extra=*/true);
      auto* coupon = e->mutable_coupon_issued();
      coupon->set_coupon_id(absl::StrCat("cp-", e->event_id()));
      coupon->set_campaign_id(rng->Chance(0.5) ? "monthly-care" : "refill-discount");
      coupon->set_value_minor(rng->Chance(0.5) ? 1000 : 2000);
      coupon->set_currency("CNY");
      coupon->mutable_expires_at()->set_seconds(e->occurred_at().seconds() + valid * 86400);
      p->coupons.push_back({coupon->coupon_id(), rng->Chance(0.35) ? day + rng->Int(1, valid - 1)
                                                                   : -1});
    }
  }

  void AddCheckIn(SimPatient* p, int day, Rng* rng) {
    double r = rng->Uniform();
    auto* ci = NewEvent(p, day, rng->Int(6 * 60 + 30, 21 * 60), rng)->mutable_check_in();
    if (r < 0.35) {
      ci->set_kind(v1::CheckIn::GLUCOSE);
      ci->mutable_glucose()->set_mmol_per_l(std::round(std::max(3.5, rng->Normal(7.2, 1.6)) * 10) / 10);
      ci->mutable_glucose()->set_context(rng->Chance(0.7) ? v1::GlucoseReading::FASTING
                                                          : v1::GlucoseReading::POSTPRANDIAL);
    } else if (r < 0.60) {
      ci->set_kind(v1::CheckIn::BLOOD_PRESSURE);
      int sys = static_cast<int>(std::clamp(rng->Normal(138, 14), 95.0, 200.0));
      ci->mutable_blood_pressure()->set_systolic_mmhg(sys);
      ci->mutable_blood_pressure()->set_diastolic_mmhg(
          static_cast<int>(std::clamp(rng->Normal(86, 9), 55.0, sys - 20.0)));
      ci->mutable_blood_pressure()->set_pulse_bpm(rng->Int(58, 96));
    } else if (r < 0.80) {
      ci->set_kind(v1::CheckIn::MEDICATION);
      ci->mutable_medication()->set_ingredient(rng->Pick(kIngredients));
      ci->mutable_medication()->set_dose_mg(500);
    } else if (r < 0.95) {
      ci->set_kind(v1::CheckIn::TRAINING);
      ci->mutable_training()->set_program_item(p->program_id);
      ci->mutable_training()->set_minutes(rng->Int(10, 45));
    } else {
      ci->set_kind(v1::CheckIn::DIET);
    }
  }

  // First conversion concentrates in the first 7-15 days (DOMAIN.md); about 40% of buyers
  // come back when their 30-day supply runs out.
  void MaybePurchase(SimPatient* p, int day, int age, double engagement, Rng* rng) {
    bool buy = false;
    if (!p->converted) {
      double daily = age < 7 ? 0.025 : age < 15 ? 0.012 : 0.002;
      buy = rng->Chance(daily * (0.3 + engagement));
    } else if (day == p->next_purchase_day) {
      buy = rng->Chance(0.4 + 0.4 * engagement);
      if (!buy) p->next_purchase_day = -1;
    }
    if (!buy) return;
    auto* e = NewEvent(p, day, rng->Int(9 * 60, 22 * 60), rng);
    auto* order = e->mutable_purchase();
    order->set_order_id(absl::StrCat("o-", e->event_id()));
    order->set_currency("CNY");
    auto* item = order->add_items();
    const char* ingredient = kIngredients[std::hash<std::string>()(p->program_id) % 3];
    item->set_sku(absl::StrCat("med-", ingredient, "-30d"));
    item->set_quantity(1);
    item->set_unit_price_minor(rng->Int(60, 140) * 100);
    item->set_ingredient(ingredient);
    item->set_days_supply(30);
    int64_t total = item->unit_price_minor();
    if (rng->Chance(0.3)) {
      auto* extra = order->add_items();
      extra->set_sku("glucose-strips-50");
      extra->set_quantity(rng->Int(1, 2));
      extra->set_unit_price_minor(4900);
      total += extra->quantity() * extra->unit_price_minor();
    }
    order->set_amount_minor(total);
    p->converted = true;
    p->next_purchase_day = day + 30 + rng->Int(-3, 5);
  }

  const CohortOptions& o_;
  const std::function<absl::Status(const v1::Event&)>& emit_;
  const absl::Time start_;
  std::vector<SimPatient> patients_;
  std::priority_queue<Pending*, std::vector<Pending*>, PendingLater> queue_;
  std::vector<std::pair<Pending*, Pending*>> duplicates_;
  int64_t seq_ = 0;
};

}  // namespace

absl::Status SimulateCohort(const CohortOptions& options,
                            const std::function<absl::Status(const v1::Event&)>& emit) {
  if (options.patients < 1) return absl::InvalidArgumentError("--patients must be >= 1");
  if (options.days < 1 || options.days > 3660) {
    return absl::InvalidArgumentError("--days must be 1..3660");
  }
  if (options.duplicate_rate < 0 || options.duplicate_rate > 0.5) {
    return absl::InvalidArgumentError("duplicate rate must be in [0, 0.5]");
  }
  if (!options.effect_experiment.empty() &&
      (!(options.effect_holdout > 0 && options.effect_holdout <= 1) ||
       !(options.effect_check_in_drop >= 0 && options.effect_check_in_drop < 1))) {
    return absl::InvalidArgumentError(
        "--effect-holdout must be in (0, 1] (the experiment's holdout share) and --effect-drop "
        "in [0, 1) (the relative drop in held-out patients' daily check-ins)");
  }
  Simulator sim(options, emit);
  return sim.Run();
}

}  // namespace tend
