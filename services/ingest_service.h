// tend.v1.Ingest: the front door for apps, chat callbacks and POS systems.
// Thread-safe: gRPC calls Append from many threads; the producer is thread-safe.
#ifndef TEND_SERVICES_INGEST_SERVICE_H_
#define TEND_SERVICES_INGEST_SERVICE_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "auth/auth.h"
#include "events/codec.h"
#include "kafka/kafka.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

class IngestService final : public v1::Ingest::Service {
 public:
  // `producer` is borrowed and must outlive the service.
  IngestService(Producer* producer, std::string topic, ValidationOptions validation = {})
      : producer_(producer), topic_(std::move(topic)), validation_(validation) {}

  grpc::Status Append(grpc::ServerContext* context, const v1::AppendRequest* request,
                      v1::AppendResponse* response) override;
  grpc::Status AppendBatch(grpc::ServerContext* context, const v1::AppendBatchRequest* request,
                           v1::AppendBatchResponse* response) override;

  static constexpr int kMaxBatchEvents = 1000;
  // Append's trailing metadata: the event's id, the caller's or the one the server made, on
  // every answer after the event passed its checks (an UNAVAILABLE one included: the id to send
  // it again with).
  static constexpr char kEventIdMetadata[] = "tend-event-id";
  // The longest Append and AppendBatch wait for the broker (less when the caller's deadline is
  // sooner: they answer a tenth of the time it gave, at most a second, before it).
  static constexpr absl::Duration kBatchWait = absl::Seconds(30);
  // Another bound than kBatchWait (tests). Set before serving.
  void set_batch_wait(absl::Duration wait) { batch_wait_ = wait; }

  // Calls must carry a token of this service's role (auth/auth.h); unset: no token check.
  // Set before serving.
  void set_authorizer(std::shared_ptr<const Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }

 private:
  Producer* const producer_;
  const std::string topic_;
  const ValidationOptions validation_;
  std::shared_ptr<const Authorizer> authorizer_;
  absl::Duration batch_wait_ = kBatchWait;
};

// Sets recorded_at to `now` and fills an empty event_id with a random one, then validates.
// Exposed for tests and for `tend produce`. kInvalidArgument names the field.
absl::Status PrepareForLog(v1::Event* event, absl::Time now, const ValidationOptions& validation);

}  // namespace tend

#endif  // TEND_SERVICES_INGEST_SERVICE_H_
