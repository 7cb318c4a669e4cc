#include "dev/tcp_forwarder.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tend {
namespace {

int ConnectTo(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

// Copies from `from` to `to` until EOF or error, then half-closes `to`.
void Pump(int from, int to, const std::atomic<bool>* stop) {
  char buf[64 * 1024];
  while (!stop->load()) {
    pollfd p{from, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r == 0) continue;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(to, buf + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        shutdown(from, SHUT_RD);
        return;
      }
      off += w;
    }
  }
  shutdown(to, SHUT_WR);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpForwarder>> TcpForwarder::Start(int listen_port,
                                                                  const std::string& target_host,
                                                                  int target_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(listen_port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1:", listen_port, ": ",
                                               strerror(e), " (choose another --port)"));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto f = std::unique_ptr<TcpForwarder>(new TcpForwarder());
  f->listen_fd_ = fd;
  f->port_ = ntohs(addr.sin_port);
  f->target_host_ = target_host;
  f->target_port_ = target_port;
  f->acceptor_ = std::thread([p = f.get()] { p->AcceptLoop(); });
  return f;
}

void TcpForwarder::AcceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int upstream = ConnectTo(target_host_, target_port_);
    if (upstream < 0) {
      close(client);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(client);
    fds_.push_back(upstream);
    pumps_.emplace_back(Pump, client, upstream, &stop_);
    pumps_.emplace_back(Pump, upstream, client, &stop_);
  }
}

TcpForwarder::~TcpForwarder() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& t : pumps_) t.join();
  for (int fd : fds_) close(fd);
  close(listen_fd_);
}

}  // namespace tend
