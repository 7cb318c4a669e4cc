// Delivers reminder commands to a tend.v1.ReminderSink: at least once, with command_id as the
// idempotency key, retrying with exponential backoff and jitter until the sink acknowledges, the
// command expires, or the caller stops. Live mode only (docs/design.md, "Run modes"): expiry is
// judged by the wall clock, outside the fold.
//
// Thread safety: Deliver may be called from several threads (gRPC stubs are thread-safe).
#ifndef TEND_DISPATCH_SINK_CLIENT_H_
#define TEND_DISPATCH_SINK_CLIENT_H_

#include <atomic>
#include <memory>
#include <string>

#include "auth/auth.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

struct SinkClientOptions {
  std::string target;  // host:port of the ReminderSink
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Backoff between attempts: starts here, doubles each failure up to the maximum; each wait is
  // drawn uniformly from [backoff / 2, backoff] (jitter, so retries of many commands spread out).
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);
  // TLS (the sink's CA; a client certificate for mutual TLS; the certificate's name) and the
  // deliver-role token.
  ClientSecurity security;
};

enum class DeliveryOutcome {
  kDelivered,  // acknowledged, first time
  kDuplicate,  // acknowledged as already accepted (an earlier ack was lost)
  kExpired,    // expires_at passed before an acknowledgement: dropped, never sent again
  kRejected,   // the sink refused it as invalid (INVALID_ARGUMENT / FAILED_PRECONDITION)
  kStopped,    // the caller asked to stop; the command stays pending
  kFailed,     // Attempt only: not acknowledged this time (last_error says why); try again later
};
const char* DeliveryOutcomeName(DeliveryOutcome o);

struct DeliveryResult {
  DeliveryOutcome outcome = DeliveryOutcome::kStopped;
  int attempts = 0;
  std::string last_error;  // of the last failed attempt
};

class SinkClient {
 public:
  static absl::StatusOr<std::unique_ptr<SinkClient>> Create(const SinkClientOptions& options);

  DeliveryResult Deliver(const v1::ReminderCommand& command, const std::atomic<bool>& stop);
  // One attempt, no retry: kDelivered, kDuplicate, kRejected, kExpired (expires_at had passed;
  // not sent) or kFailed. For callers that schedule retries themselves (the dispatcher, so that
  // one command the sink keeps failing does not hold up the others).
  DeliveryResult Attempt(const v1::ReminderCommand& command);

  // The wait before the next attempt after `failures` (>= 1) unacknowledged attempts:
  // initial_backoff doubled per failure up to max_backoff, drawn uniformly from [half, all] of
  // it (jitter, so retries of many commands spread out).
  absl::Duration RetryWait(int failures, absl::BitGen& rng) const;

 private:
  explicit SinkClient(const SinkClientOptions& options) : options_(options) {}
  const SinkClientOptions options_;
  std::unique_ptr<v1::ReminderSink::Stub> stub_;
  std::string authorization_;  // "Bearer <token>" metadata, or empty
};

}  // namespace tend

#endif  // TEND_DISPATCH_SINK_CLIENT_H_
