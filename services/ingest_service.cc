#include "services/ingest_service.h"

#include <grpc/support/time.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/time.h"
#include "services/grpc_status.h"

namespace tend {

absl::Status PrepareForLog(v1::Event* event, absl::Time now, const ValidationOptions& validation) {
  if (event->event_id().empty()) {
    thread_local absl::BitGen gen;
    event->set_event_id(absl::StrFormat("ev-%016x%016x", absl::Uniform<uint64_t>(gen),
                                        absl::Uniform<uint64_t>(gen)));
  }
  *event->mutable_recorded_at() = ToProtoTime(now);
  // What the engine would dead-letter is refused here, before it is acknowledged.
  if (event->ByteSizeLong() > kMaxEventBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event: ", event->ByteSizeLong(), " bytes serialized; at most ", kMaxEventBytes));
  }
  return ValidateEvent(*event, validation);
}

namespace {

// The latest a call that waits for the broker answers: a tenth of the time the caller gave (at
// most a second) before its deadline, so that the answer reaches it while it still listens, and
// never later than `most` from now.
absl::Time AnswerBy(const grpc::ServerContext& context, absl::Time now, absl::Duration most) {
  absl::Time by = now + most;
  // The caller's deadline from gRPC's own time: context.deadline() converts it to nanoseconds
  // since the epoch, which an int64 holds only to 2262, so a caller's "no deadline" of centuries
  // (as some languages' clients send it) would come out in the past and every call be answered
  // UNAVAILABLE at once. None: infinite.
  const gpr_timespec raw = gpr_convert_clock_type(context.raw_deadline(), GPR_CLOCK_REALTIME);
  if (gpr_time_cmp(raw, gpr_inf_future(GPR_CLOCK_REALTIME)) == 0) return by;
  const absl::Time caller = absl::FromUnixSeconds(raw.tv_sec) + absl::Nanoseconds(raw.tv_nsec);
  if (caller < by) by = caller - std::min((caller - now) / 10, absl::Seconds(1));
  return by;
}

// Produces every event of `events` whose `refused` entry is false, at once, and waits for their
// acknowledgements until `by`. One entry per event: its delivery report, unset when none came
// in time (the event may still land later: Kafka cannot take a record back, which is why the
// caller sends it again with the same event_id). The reports that come late land in memory the
// callbacks share, not in the caller's.
std::vector<std::optional<Delivery>> ProduceAndWait(Producer* producer, const std::string& topic,
                                                    const std::vector<v1::Event>& events,
                                                    const std::vector<bool>& refused,
                                                    absl::Time by) {
  struct Pending {
    absl::Mutex mu;
    int waiting ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::optional<Delivery>> deliveries ABSL_GUARDED_BY(mu);  // unset: no report yet
  };
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->deliveries.resize(events.size());
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (refused[i]) continue;
    {
      absl::MutexLock lock(&pending->mu);
      ++pending->waiting;
    }
    absl::Status enqueued =
        ProduceEvent(producer, topic, events[i], [pending, i](const Delivery& d) {
          absl::MutexLock lock(&pending->mu);
          pending->deliveries[i] = d;
          --pending->waiting;
        }, /*give_up=*/by);
    if (!enqueued.ok()) {
      absl::MutexLock lock(&pending->mu);
      --pending->waiting;
      pending->deliveries[i] = Delivery{enqueued};
    }
  }
  absl::MutexLock lock(&pending->mu);
  pending->mu.AwaitWithDeadline(
      absl::Condition(+[](int* waiting) { return *waiting == 0; }, &pending->waiting), by);
  return pending->deliveries;
}

// What the caller is told of an event that was not appended: `failed`, or UNAVAILABLE when no
// report came in time. An UNAVAILABLE event is to be sent again, with the id it had here, which
// the server may have made (an event sent without one): the message says which.
grpc::Status NotAppended(absl::string_view field, const v1::Event& event,
                         const std::optional<Delivery>& delivery) {
  if (delivery.has_value()) {
    const grpc::Status failed = ToGrpc(delivery->status);
    if (failed.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return grpc::Status(failed.error_code(), absl::StrCat(field, ": ", failed.error_message()));
    }
  }
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      absl::StrCat(field, ": ",
                   delivery.has_value() ? delivery->status.message()
                                        : "not acknowledged by the broker in time",
                   "; send it again with event_id \"", event.event_id(),
                   "\" (the same id: no duplicate)"));
}

}  // namespace

grpc::Status IngestService::Append(grpc::ServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kIngest); !s.ok()) return s;
  if (!request->has_event()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "event: is required");
  }
  const absl::Time now = absl::Now();
  std::vector<v1::Event> events = {request->event()};
  v1::Event& event = events[0];
  if (absl::Status s = PrepareForLog(&event, now, validation_); !s.ok()) {
    return ToGrpc(s, "event.");
  }
  // From here on the event may reach the log: whatever the answer, the caller learns its id.
  context->AddTrailingMetadata(kEventIdMetadata, event.event_id());
  const std::optional<Delivery> d = ProduceAndWait(producer_, topic_, events, {false},
                                                   AnswerBy(*context, now, batch_wait_))[0];
  if (!d.has_value() || !d->status.ok()) return NotAppended("event", event, d);
  response->set_event_id(event.event_id());
  response->set_partition(d->partition);
  response->set_offset(d->offset);
  *response->mutable_recorded_at() = event.recorded_at();
  return grpc::Status::OK;
}

grpc::Status IngestService::AppendBatch(grpc::ServerContext* context,
                                        const v1::AppendBatchRequest* request,
                                        v1::AppendBatchResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kIngest); !s.ok()) return s;
  const int n = request->events_size();
  if (n > kMaxBatchEvents) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("events: ", n, " in one batch; at most ", kMaxBatchEvents,
                                     " (split it)"));
  }
  const absl::Time now = absl::Now();
  // Every good event is produced at once, and the call waits for the broker's acknowledgements
  // until shortly before its deadline (at most batch_wait_); what is still unacknowledged then
  // is answered UNAVAILABLE, with the event's id to send it again with.
  std::vector<v1::Event> events(static_cast<size_t>(n));
  std::vector<bool> refused(static_cast<size_t>(n), false);
  for (int i = 0; i < n; ++i) {
    const size_t index = static_cast<size_t>(i);
    auto* result = response->add_results();
    v1::Event& event = events[index];
    event = request->events(i);
    if (absl::Status s = PrepareForLog(&event, now, validation_); !s.ok()) {
      const grpc::Status failed = ToGrpc(s, absl::StrCat("events[", i, "]."));
      result->set_code(failed.error_code());
      result->set_error(failed.error_message());
      refused[index] = true;
      continue;
    }
    result->set_event_id(event.event_id());
  }
  const std::vector<std::optional<Delivery>> deliveries =
      ProduceAndWait(producer_, topic_, events, refused, AnswerBy(*context, now, batch_wait_));
  for (int i = 0; i < n; ++i) {
    const size_t index = static_cast<size_t>(i);
    if (refused[index]) continue;
    auto* result = response->mutable_results(i);
    const v1::Event& event = events[index];
    if (!deliveries[index].has_value() || !deliveries[index]->status.ok()) {
      const grpc::Status failed =
          NotAppended(absl::StrCat("events[", i, "]"), event, deliveries[index]);
      result->set_code(failed.error_code());
      result->set_error(failed.error_message());
      continue;
    }
    const Delivery& d = *deliveries[index];
    auto* appended = result->mutable_appended();
    appended->set_event_id(event.event_id());
    appended->set_partition(d.partition);
    appended->set_offset(d.offset);
    *appended->mutable_recorded_at() = event.recorded_at();
  }
  return grpc::Status::OK;
}

}  // namespace tend
