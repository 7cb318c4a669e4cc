#include "tests/contents.h"

#include <catch2/catch.hpp>

namespace tend::testing {

Contents ReadContents(const Storage& storage, int partitions) {
  Contents c;
  REQUIRE(storage
              .ForEachState([&](const v1::PatientState& s) {
                c.states[s.patient_id()] = s.SerializeAsString();
                return absl::OkStatus();
              })
              .ok());
  REQUIRE(storage
              .ForEachCommand([&](int32_t partition, const v1::ReminderCommand& cmd) {
                c.commands.push_back(std::to_string(partition) + "/" + cmd.command_id());
                return absl::OkStatus();
              })
              .ok());
  for (int32_t p = 0; p < partitions; ++p) {
    REQUIRE(storage
                .ForEachTimer(p,
                              [&](int64_t due, absl::string_view patient, absl::string_view rule) {
                                c.timers.emplace_back(p, due, std::string(patient),
                                                      std::string(rule));
                                return absl::OkStatus();
                              })
                .ok());
  }
  auto checkpoints = storage.LoadCheckpoints();
  REQUIRE(checkpoints.ok());
  for (const auto& cp : *checkpoints) c.checkpoints[cp.partition()] = cp.SerializeAsString();
  return c;
}

std::vector<std::string> ReadIndex(const Storage& storage) {
  std::vector<std::string> keys;
  REQUIRE(storage
              .ScanIndex(std::string(), std::string(8, '\xff'),
                         [&](absl::string_view k) {
                           keys.emplace_back(k);
                           return true;
                         })
              .ok());
  return keys;
}

}  // namespace tend::testing
