// tend demo: the whole spine in one process - the mock broker, a simulated cohort with a few
// malformed records, the engine with the default rule pack, the dispatcher and the reference
// sink, gRPC Ingest and Query - then a short summary. Development only.
#ifndef TEND_DEV_DEMO_H_
#define TEND_DEV_DEMO_H_

#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace tend {

struct DemoOptions {
  int patients = 3000;
  int days = 120;
  uint64_t seed = 7;
  int partitions = 16;
  std::string grpc_listen = "127.0.0.1:0";
  bool serve = false;  // keep broker, engine and gRPC running until `stop`
  // Prometheus metrics of the engine, dispatcher, sink and gRPC at http://ADDR/metrics; empty:
  // none.
  std::string metrics_listen;
  // Rules deciding in the fold; their commands go through the dispatcher to the reference sink
  // served beside Query. Empty: projections only.
  std::string rules_path = "deploy/rules/default.yaml";
};
absl::Status RunDemo(const DemoOptions& options, const std::atomic<bool>& stop, std::ostream& out);

}  // namespace tend

#endif  // TEND_DEV_DEMO_H_
