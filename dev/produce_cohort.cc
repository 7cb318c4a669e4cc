#include "dev/produce_cohort.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace tend {

absl::StatusOr<int64_t> SimulateToKafka(const CohortOptions& options, Producer* producer,
                                        const std::string& topic) {
  int64_t produced = 0;
  TEND_RETURN_IF_ERROR(SimulateCohort(options, [&](const v1::Event& e) {
    ++produced;
    return ProduceEvent(producer, topic, e);
  }));
  int64_t failed_before = producer->failed();
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(120)));
  if (producer->failed() != failed_before) {
    return absl::UnavailableError(absl::StrCat(producer->failed() - failed_before,
                                               " records were not acknowledged by the broker"));
  }
  return produced;
}

}  // namespace tend
