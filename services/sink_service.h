// The reference tend.v1.ReminderSink (`tend sink`): accepts each command once, deduplicating on
// command_id, and records every accepted command as one JSON line in an output file (appended
// and flushed before acknowledging, so an acknowledged command is on disk). On start it reads
// the file back, so duplicates are recognised across restarts: a line there that is not a
// command stops the start (kDataLoss naming the line), and a last line cut short by a crash is
// removed. Gateway implementers copy this
// contract: dedupe on command_id, acknowledge only what is durable.
//
// A command is hostile input like any request: one larger than kMaxSinkCommandBytes serialized,
// with more than kMaxSinkParameters parameters, or whose command_id is longer than
// kMaxSinkCommandIdBytes or holds a control character is refused (INVALID_ARGUMENT naming the
// field; the engine's dispatcher then records it as rejected, where a request over gRPC's own
// bound of 4 MiB is RESOURCE_EXHAUSTED, which the dispatcher retries until the command expires).
// tend's own commands stay far below: ids of 32 hex digits, parameters from a rule's template.
// The output file is created readable by its owner only (it names patients).
//
// Thread-safe: Deliver may run on many gRPC threads at once.
#ifndef TEND_SERVICES_SINK_SERVICE_H_
#define TEND_SERVICES_SINK_SERVICE_H_

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "auth/auth.h"
#include "base/json.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

inline constexpr size_t kMaxSinkCommandBytes = 64 << 10;
inline constexpr size_t kMaxSinkCommandIdBytes = 128;
inline constexpr int kMaxSinkParameters = 256;

class SinkService final : public v1::ReminderSink::Service {
 public:
  // `out_path` empty: keep accepted commands in memory only (tests, demo). `keep_commands`:
  // whether commands() holds them (for tests and the demo; a long-running sink with a file keeps
  // only their ids, for dedupe).
  static absl::StatusOr<std::unique_ptr<SinkService>> Create(const std::string& out_path,
                                                             bool keep_commands = true);

  grpc::Status Deliver(grpc::ServerContext* context, const v1::DeliverRequest* request,
                       v1::DeliverResponse* response) override;

  int64_t accepted() const;
  int64_t duplicates() const;
  // The accepted commands, in acceptance order (none unless created with keep_commands).
  std::vector<v1::ReminderCommand> commands() const;
  // Called (under the sink's lock, on a gRPC thread) with each command as it is accepted, and
  // the time it was; for measurements. Set before serving.
  // Calls must carry a token of role deliver (auth/auth.h); unset: no token check.
  // Set before serving.
  void set_authorizer(std::shared_ptr<const Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }
  void set_on_accept(std::function<void(const v1::ReminderCommand&, absl::Time)> fn) {
    on_accept_ = std::move(fn);
  }

 private:
  SinkService() = default;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReminderCommand> commands_ ABSL_GUARDED_BY(mu_);
  bool keep_commands_ = true;
  int64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  std::ofstream out_ ABSL_GUARDED_BY(mu_);
  bool has_out_ = false;
  std::function<void(const v1::ReminderCommand&, absl::Time)> on_accept_;
  std::shared_ptr<const Authorizer> authorizer_;
  JsonWriter json_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tend

#endif  // TEND_SERVICES_SINK_SERVICE_H_
