// Forwards TCP connections from a local listening port to a target address, byte for byte.
// Used by `tend broker --port` to give librdkafka's mock cluster (which binds an ephemeral port)
// a stable bootstrap address. Development use: one thread per direction per connection.
// Thread-safe: the object is driven by its own threads; the destructor stops and joins them.
#ifndef TEND_DEV_TCP_FORWARDER_H_
#define TEND_DEV_TCP_FORWARDER_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace tend {

class TcpForwarder {
 public:
  // Listens on 127.0.0.1:listen_port (0 = any free port) and forwards to target_host:target_port.
  static absl::StatusOr<std::unique_ptr<TcpForwarder>> Start(int listen_port,
                                                             const std::string& target_host,
                                                             int target_port);
  ~TcpForwarder();
  int port() const { return port_; }

 private:
  TcpForwarder() = default;
  void AcceptLoop();

  int listen_fd_ = -1;
  int port_ = 0;
  std::string target_host_;
  int target_port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tend

#endif  // TEND_DEV_TCP_FORWARDER_H_
