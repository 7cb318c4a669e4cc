#include "observe/health.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace tend {

Readiness JudgeReadiness(const EngineStats& stats, int64_t max_lag) {
  if (stats.restoring >= 0) {
    return {false, absl::StrCat("restoring partition ", stats.restoring,
                                " from the state changelog")};
  }
  if (!stats.refused.empty()) {
    const RefusedPartition& r = stats.refused.front();
    return {false, absl::StrCat("partition ", r.partition, " is refused",
                                stats.refused.size() > 1
                                    ? absl::StrCat(" (and ", stats.refused.size() - 1, " more)")
                                    : "",
                                ": ", r.why)};
  }
  if (stats.partitions.empty()) return {false, "no partitions assigned"};
  for (const PartitionStats& p : stats.partitions) {
    if (p.lag() < 0) {
      return {false, absl::StrCat("partition ", p.partition, ": the log's end is not known yet")};
    }
    if (p.lag() > max_lag) {
      return {false, absl::StrCat("partition ", p.partition, " is ", p.lag(),
                                  " records behind its log (more than ", max_lag, ")")};
    }
  }
  return {true, ""};
}

HealthGate::HealthGate(const Engine* engine, const RunningServer* server,
                       const HealthOptions& options)
    : engine_(engine), server_(server), options_(options), thread_([this] { Loop(); }) {}

HealthGate::~HealthGate() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void HealthGate::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  Set({false, "the engine stopped"}, /*unless_stopped=*/false);
}

std::string HealthGate::why() const {
  absl::MutexLock lock(&mu_);
  return why_;
}

void HealthGate::Set(const Readiness& r, bool unless_stopped) {
  absl::MutexLock set_lock(&set_mu_);  // one answer at a time, in order
  {
    absl::MutexLock lock(&mu_);
    if (unless_stopped && stop_) return;  // Stop() said NOT_SERVING: it stays
    why_ = r.why;
  }
  const bool was = serving_.exchange(r.serving);
  if (server_ != nullptr) server_->SetServing(r.serving);
  // A line at each change, not at each look.
  if (was != r.serving || (!r.serving && !unless_stopped)) {
    if (r.serving) {
      TEND_LOG_INFO("health: SERVING");
    } else {
      TEND_LOG_INFO("health: NOT_SERVING (%s)", r.why);
    }
  }
}

void HealthGate::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval)) return;
    }
    Set(JudgeReadiness(engine_->stats(), options_.max_lag), /*unless_stopped=*/true);
  }
}

absl::StatusOr<bool> CheckHealth(const std::string& target, const ClientSecurity& security,
                                 const std::string& service, absl::Duration timeout) {
  auto auth = MakeClientAuth(security, target);
  if (!auth.ok()) return auth.status();
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(target, auth->credentials));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!auth->authorization.empty()) context.AddMetadata("authorization", auth->authorization);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status s = stub->Check(&context, request, &response);
  if (s.ok()) return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  const std::string what = absl::StrCat("health check of ", target,
                                        service.empty() ? std::string() : " for " + service);
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(absl::StrCat(what, ": no such service"));
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::UnavailableError(absl::StrCat(what, ": ", s.error_message()));
    default:
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          absl::StrCat(what, ": ", s.error_message()));
  }
}

}  // namespace tend
