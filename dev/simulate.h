// A synthetic cohort of patients following ../shared/DOMAIN.md: a first scan from a channel,
// enrollment in a programme, then check-ins, chat messages and purchases whose rates depend on the
// patient's persona (engaged, fading, silent, churned), a little consent churn, birthdays and
// coupons (issued about monthly, some redeemed), and a small share
// of duplicate deliveries (the same event_id twice). Deterministic: the same options give the same
// events, byte for byte, on any machine (own RNG transforms, no std:: distributions).
#ifndef TEND_DEV_SIMULATE_H_
#define TEND_DEV_SIMULATE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tend/v1/events.pb.h"

namespace tend {

struct CohortOptions {
  int patients = 1000;
  int days = 90;  // the simulated period ends at `end`
  uint64_t seed = 1;
  absl::Time end = absl::FromUnixSeconds(1767225600);  // 2026-01-01T00:00:00Z
  double duplicate_rate = 0.01;  // share of events delivered twice
  // Share of patients acquired on day 0 (the rest are spread over the period).
  double initial_share = 0.3;
  // Patient ids of 36 characters shaped like a UUID (a hash of the patient's number), as many
  // deployments' ids are, instead of "p0000123". Past the standard library's 15 inline
  // characters a copied id is a heap allocation, and its comparisons read another line: the
  // throughput bench measures both (tend bench --long-ids). The events are the same but for
  // the ids, unless an effect_experiment is set: its holdout hashes the id, so other patients
  // are held out.
  bool long_ids = false;
  // A known effect of the reminders, the ground truth for the uplift (issue 20): the patients
  // experiment `effect_experiment` holds out - AssignmentUnit(effect_experiment, patient id) <
  // effect_holdout (base/hash.h), the rules' own assignment - check in less: their daily chance
  // of checking in is multiplied by 1 - effect_check_in_drop, from their first day. Messages and
  // purchases are unchanged. Empty experiment: no effect.
  std::string effect_experiment;
  double effect_holdout = 0;        // (0, 1]; 1: everyone
  double effect_check_in_drop = 0;  // [0, 1)
  // Only the patients whose id it accepts (empty: all). Each included patient's events are
  // exactly those of the whole cohort's run, in the same order (SimulateToArchive writes one
  // partition's patients at a time with it).
  std::function<bool(const std::string& patient_id)> only;
};

// Emits the events in recorded_at order (the order an ingest service would log them). Stops and
// returns the first error `emit` returns. kInvalidArgument for bad options.
absl::Status SimulateCohort(const CohortOptions& options,
                            const std::function<absl::Status(const v1::Event&)>& emit);

}  // namespace tend

#endif  // TEND_DEV_SIMULATE_H_
