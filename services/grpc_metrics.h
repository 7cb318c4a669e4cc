// Per-method counts and latencies of a gRPC server's calls, for metrics (observe/ exposes them as
// tend_grpc_*): a server interceptor records each call's status code and its time from the
// request's metadata to the status being sent. The methods are fixed when the GrpcMetrics is
// made (from the services' descriptors), so a caller naming methods that do not exist cannot
// grow the label set: such calls count under the method "other".
//
// Thread safety: thread-safe; recording is lock-free (the method table is immutable).
#ifndef TEND_SERVICES_GRPC_METRICS_H_
#define TEND_SERVICES_GRPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "base/histogram.h"

namespace tend {

class GrpcMetrics {
 public:
  // gRPC's status codes, OK (0) to UNAUTHENTICATED (16).
  static constexpr int kCodes = 17;

  // Counts calls of every method of `services` (full names of services compiled into the
  // program, e.g. "tend.v1.Query"), and of the standard health service (grpc.health.v1.Health:
  // Check, Watch).
  explicit GrpcMetrics(const std::vector<std::string>& services);

  struct MethodSnapshot {
    std::string service;  // e.g. "tend.v1.Query"; "other" for an unknown method
    std::string method;   // e.g. "GetPatient"; "other"
    std::array<int64_t, kCodes> calls{};  // by status code
    Histogram::Snapshot seconds;
  };
  std::vector<MethodSnapshot> Read() const;

  // Records one finished call of `full_method` ("/package.Service/Method").
  void Record(absl::string_view full_method, int code, double seconds);

  // The interceptor factory to install on the server (services/server.h ServerOptions does).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  struct Method {
    std::string service, method;
    std::array<std::atomic<int64_t>, kCodes> calls{};
    Histogram seconds{Histogram::SecondsBounds()};
  };
  Method* Find(absl::string_view full_method);
  std::vector<std::unique_ptr<Method>> methods_;             // the last is "other"
  absl::flat_hash_map<std::string, Method*> by_full_name_;  // "/pkg.Service/Method"
};

}  // namespace tend

#endif  // TEND_SERVICES_GRPC_METRICS_H_
