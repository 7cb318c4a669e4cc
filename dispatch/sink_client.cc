#include "dispatch/sink_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace tend {

const char* DeliveryOutcomeName(DeliveryOutcome o) {
  switch (o) {
    case DeliveryOutcome::kDelivered: return "delivered";
    case DeliveryOutcome::kDuplicate: return "duplicate";
    case DeliveryOutcome::kExpired: return "expired";
    case DeliveryOutcome::kRejected: return "rejected";
    case DeliveryOutcome::kStopped: return "stopped";
    case DeliveryOutcome::kFailed: return "failed";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<SinkClient>> SinkClient::Create(const SinkClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("the sink target is required");
  std::unique_ptr<SinkClient> c(new SinkClient(options));
  TEND_ASSIGN_OR_RETURN(ClientAuth auth, MakeClientAuth(options.security, options.target));
  c->authorization_ = std::move(auth.authorization);
  grpc::ChannelArguments args;
  if (!options.security.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.security.tls_server_name);
  }
  // Reconnect promptly once the sink is back; our own backoff paces the attempts.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  c->stub_ = v1::ReminderSink::NewStub(
      grpc::CreateCustomChannel(options.target, auth.credentials, args));
  return c;
}

DeliveryResult SinkClient::Attempt(const v1::ReminderCommand& command) {
  DeliveryResult result;
  const absl::Time now = absl::Now();
  if (command.has_expires_at() && now >= absl::FromUnixSeconds(command.expires_at().seconds())) {
    result.outcome = DeliveryOutcome::kExpired;
    return result;
  }
  result.attempts = 1;
  v1::DeliverRequest request;
  *request.mutable_command() = command;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(now + options_.rpc_timeout));
  if (!authorization_.empty()) ctx.AddMetadata("authorization", authorization_);
  v1::DeliverResponse response;
  const grpc::Status s = stub_->Deliver(&ctx, request, &response);
  if (s.ok()) {
    result.outcome = response.duplicate() ? DeliveryOutcome::kDuplicate : DeliveryOutcome::kDelivered;
    return result;
  }
  result.last_error = absl::StrCat(s.error_code(), ": ", s.error_message());
  result.outcome = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                           s.error_code() == grpc::StatusCode::FAILED_PRECONDITION
                       ? DeliveryOutcome::kRejected
                       : DeliveryOutcome::kFailed;
  return result;
}

DeliveryResult SinkClient::Deliver(const v1::ReminderCommand& command,
                                   const std::atomic<bool>& stop) {
  DeliveryResult result;
  result.outcome = DeliveryOutcome::kStopped;
  absl::BitGen rng;
  for (;;) {
    if (stop.load()) return result;
    const DeliveryResult attempt = Attempt(command);
    result.attempts += attempt.attempts;
    result.outcome = attempt.outcome;
    if (attempt.outcome != DeliveryOutcome::kFailed) return result;
    result.outcome = DeliveryOutcome::kStopped;
    result.last_error = attempt.last_error;
    // Wait, in small steps so a stop is noticed promptly.
    const absl::Time until = absl::Now() + RetryWait(result.attempts, rng);
    while (!stop.load() && absl::Now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

absl::Duration SinkClient::RetryWait(int failures, absl::BitGen& rng) const {
  absl::Duration backoff = options_.initial_backoff;
  for (int i = 1; i < failures && backoff < options_.max_backoff; ++i) backoff *= 2;
  backoff = std::min(backoff, options_.max_backoff);
  return absl::Nanoseconds(absl::Uniform<int64_t>(rng, absl::ToInt64Nanoseconds(backoff) / 2,
                                                  absl::ToInt64Nanoseconds(backoff) + 1));
}

}  // namespace tend
