// Readable event builders for the projection specs: times are RFC 3339 strings, so a test reads
// like the worked example it encodes.
#ifndef TEND_TESTS_PROJECTIONS_EVENTS_H_
#define TEND_TESTS_PROJECTIONS_EVENTS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::testing {

// Parses "2026-03-07T23:30:00-05:00"; aborts the test binary on a typo.
absl::Time At(const std::string& rfc3339);

v1::Event ScanEvent(const std::string& id, const std::string& at, const std::string& channel,
                    const std::string& staff);
v1::Event PatientMessage(const std::string& id, const std::string& at,
                         std::vector<std::string> keywords = {});
v1::Event StaffMessage(const std::string& id, const std::string& at);
v1::Event CheckInEvent(const std::string& id, const std::string& at,
                       v1::CheckIn::Kind kind = v1::CheckIn::GLUCOSE);
struct Item {
  std::string ingredient;  // empty: not a medication
  int days_supply = 0;
};
v1::Event PurchaseEvent(const std::string& id, const std::string& at, int64_t amount_minor,
                        std::vector<Item> items = {}, const std::string& currency = "CNY");
v1::Event EnrollEvent(const std::string& id, const std::string& at, const std::string& program,
                      const std::string& time_zone);
v1::Event ContactRemovedEvent(const std::string& id, const std::string& at);
v1::Event ConsentEvent(const std::string& id, const std::string& at,
                       v1::ConsentChanged::Purpose purpose, bool granted);

// Folds the events in the given order with projections::Apply.
v1::PatientState FoldAll(const projections::ProjectionConfig& config,
                         const std::vector<v1::Event>& events);
// Folds, then views at `as_of`.
v1::PatientView ViewAt(const projections::ProjectionConfig& config,
                       const std::vector<v1::Event>& events, const std::string& as_of);

}  // namespace tend::testing

#endif  // TEND_TESTS_PROJECTIONS_EVENTS_H_
