// tend bench --dispatch: outbox to sink. (1) Throughput: `commands` commands due now, in 32 partitions, delivered over
// gRPC (loopback) to the reference sink behind a fixed delay that stands for a remote gateway's
// response time; the dispatcher with one delivery in flight (the baseline of the ratio) against
// `in_flight`, alternating, medians. (2) Waiting: `deferred` commands due tomorrow (the end of
// quiet hours) in the outbox and the dispatcher idle for 3 s: the process's CPU time and the
// commands it read, against one full read of the outbox (what a dispatcher that rescans would
// pay on every pass).

#include <sys/resource.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "bench/bench.h"
#include "bench/cpu.h"
#include "dispatch/dispatcher.h"
#include "services/server.h"
#include "services/sink_service.h"
#include "storage/storage.h"

namespace tend {
namespace {

// The reference sink, answering after `delay`.
class DelayedSink final : public v1::ReminderSink::Service {
 public:
  DelayedSink(SinkService* sink, absl::Duration delay) : sink_(sink), delay_(delay) {}
  grpc::Status Deliver(grpc::ServerContext* context, const v1::DeliverRequest* request,
                       v1::DeliverResponse* response) override {
    absl::SleepFor(delay_);
    return sink_->Deliver(context, request, response);
  }

 private:
  SinkService* const sink_;
  const absl::Duration delay_;
};

absl::Status FillOutbox(Storage* storage, absl::string_view prefix, int64_t n,
                        int64_t not_before_s) {
  StateBatch batch = storage->NewBatch();
  for (int64_t i = 0; i < n; ++i) {
    v1::ReminderCommand c;
    c.set_command_id(absl::StrCat(prefix, i));
    c.set_patient_id(absl::StrCat("p-", i % 100'000));
    c.set_rule_id("daily-checkin");
    c.set_rule_version(1);
    c.set_template_id("checkin-reminder");
    c.set_channel(v1::CHAT);
    c.set_automated(true);
    (*c.mutable_parameters())["name"] = "patient";
    c.mutable_not_before()->set_seconds(not_before_s);
    c.mutable_expires_at()->set_seconds(not_before_s + 2 * 86400);
    batch.PutCommand(static_cast<int32_t>(i % 32), c);
    if (batch.Count() >= 10'000 || i + 1 == n) {
      TEND_RETURN_IF_ERROR(storage->Commit(&batch));
      batch.Clear();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunDispatchBench(const DispatchBenchOptions& options, std::ostream& out) {
  if (options.commands < 1 || options.in_flight < 1 || options.deferred < 0) {
    return absl::InvalidArgumentError("--commands and --in-flight must be >= 1");
  }
  TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-dispatch-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
  TEND_ASSIGN_OR_RETURN(auto sink, SinkService::Create(""));
  DelayedSink delayed(sink.get(), options.sink_delay);
  TEND_ASSIGN_OR_RETURN(RunningServer server, StartGrpcServer("127.0.0.1:0", {&delayed}));
  DispatcherOptions dispatch;
  dispatch.sink.target = absl::StrCat("127.0.0.1:", server.port);

  // One phase: fill the outbox, start a dispatcher, time until the sink has every command.
  int phase = 0;
  auto deliver_all = [&](int in_flight) -> absl::StatusOr<double> {
    const int64_t before = sink->accepted();
    TEND_RETURN_IF_ERROR(FillOutbox(storage.get(), absl::StrCat("c", phase++, "-"),
                                    options.commands, absl::ToUnixSeconds(absl::Now()) - 1));
    dispatch.max_in_flight = in_flight;
    const absl::Time start = absl::Now();
    TEND_ASSIGN_OR_RETURN(auto dispatcher, Dispatcher::Start(dispatch, storage.get()));
    while (sink->accepted() < before + options.commands) {
      if (absl::Now() - start > absl::Minutes(10)) {
        return absl::DeadlineExceededError("the sink did not get every command in 10 minutes");
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    TEND_LOG_INFO("dispatch bench: %d commands, %d in flight: %.0f commands/s", options.commands,
                  in_flight, static_cast<double>(options.commands) / seconds);
    return static_cast<double>(options.commands) / seconds;
  };
  std::vector<double> serial, concurrent;
  for (int r = 0; r < options.repeat; ++r) {
    TEND_ASSIGN_OR_RETURN(double s, deliver_all(1));
    serial.push_back(s);
    TEND_ASSIGN_OR_RETURN(double c, deliver_all(options.in_flight));
    concurrent.push_back(c);
  }
  TEND_ASSIGN_OR_RETURN(const int64_t left, storage->CountCommands());

  // Waiting with a deferred backlog.
  TEND_RETURN_IF_ERROR(FillOutbox(storage.get(), "deferred-", options.deferred,
                                  absl::ToUnixSeconds(absl::Now()) + 86400));
  const absl::Time scan_start = absl::Now();
  TEND_ASSIGN_OR_RETURN(const int64_t scanned, storage->CountCommands());
  const double full_read_ms = absl::ToDoubleMilliseconds(absl::Now() - scan_start);
  dispatch.max_in_flight = options.in_flight;
  TEND_ASSIGN_OR_RETURN(auto idle, Dispatcher::Start(dispatch, storage.get()));
  absl::SleepFor(absl::Milliseconds(200));
  const double cpu0 = ProcessCpuSeconds();
  absl::SleepFor(absl::Seconds(3));
  const double idle_cpu_ms_per_s = (ProcessCpuSeconds() - cpu0) * 1000 / 3;
  const int64_t idle_reads = idle->stats().read;
  idle.reset();
  server.server->Shutdown();

  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  out << absl::StrFormat(
             "{\"commands\":%d,\"sink_delay_ms\":%.1f,\"in_flight\":%d,\"repeat\":%d,"
             "\"serial_cps\":%.0f,\"concurrent_cps\":%.0f,\"ratio\":%.2f,\"duplicates_at_sink\":%d,"
             "\"left_in_outbox\":%d,\"deferred\":%d,\"outbox_full_read_ms\":%.1f,"
             "\"idle_cpu_ms_per_s\":%.1f,\"idle_commands_read\":%d}",
             options.commands, absl::ToDoubleMilliseconds(options.sink_delay), options.in_flight,
             options.repeat, median(serial), median(concurrent),
             median(concurrent) / median(serial), sink->duplicates(), left, scanned, full_read_ms,
             idle_cpu_ms_per_s, idle_reads)
      << std::endl;
  return absl::OkStatus();
}

}  // namespace tend
