// The outbox dispatcher (LIVE mode only, DESIGN.md points 2 and 4): delivers the commands the
// engine wrote to the outbox to a ReminderSink, each once its not_before has come, and removes
// an entry only when the sink acknowledged it (or it expired, or the sink rejected it — both
// logged with the reason). A crash between the outbox write and the acknowledgement delivers
// the command again after restart; the sink dedupes on command_id, so it is acted on once.
//
// Thread safety: Start/Stop from one thread; the dispatcher runs on its own thread.
#ifndef TEND_SERVICES_DISPATCHER_H_
#define TEND_SERVICES_DISPATCHER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/time/time.h"
#include "engine/storage.h"
#include "services/sink_client.h"

namespace tend {

struct DispatcherOptions {
  SinkClientOptions sink;
  // How often the outbox is scanned for due commands.
  absl::Duration poll_interval = absl::Milliseconds(5);
};

struct DispatcherStats {
  int64_t delivered = 0;
  int64_t duplicates = 0;  // acknowledged as already accepted
  int64_t expired = 0;
  int64_t rejected = 0;
};

class Dispatcher {
 public:
  // `storage` is borrowed and must outlive the dispatcher.
  static absl::StatusOr<std::unique_ptr<Dispatcher>> Start(const DispatcherOptions& options,
                                                           Storage* storage);
  ~Dispatcher();  // stops; commands in flight stay in the outbox
  DispatcherStats stats() const;

 private:
  Dispatcher(const DispatcherOptions& options, Storage* storage)
      : options_(options), storage_(storage) {}
  void Loop();

  const DispatcherOptions options_;
  Storage* const storage_;
  std::unique_ptr<SinkClient> client_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> delivered_{0}, duplicates_{0}, expired_{0}, rejected_{0};
  std::thread thread_;
};

}  // namespace tend

#endif  // TEND_SERVICES_DISPATCHER_H_
