// Who may call tend's gRPC services, and over what: TLS credentials for servers and clients
// (PEM files, mutual TLS when a client CA is given), and bearer tokens per role, read from a
// file and compared in constant time (docs/design.md, "Trust at the front door").
//
// Roles: ingest (tend.v1.Ingest/Append), query (tend.v1.Query), deliver (tend.v1.ReminderSink:
// the dispatcher calling a sink), admin (anything that changes operation; it may also call
// everything else). Tokens are never logged.
//
// Thread safety: an Authorizer is immutable once loaded; Check() may run on many threads.
#ifndef TEND_AUTH_AUTH_H_
#define TEND_AUTH_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

enum class Role { kIngest, kQuery, kDeliver, kAdmin };
const char* RoleName(Role role);

// The bearer tokens a server accepts. A tokens file holds lines "<role> <token>" (roles:
// ingest, query, deliver, admin; several tokens per role for rotation; '#' starts a comment).
// Tokens are 32-512 characters of visible ASCII. The file must not be readable by group or
// others (chmod 600), like an ssh key.
class Authorizer {
 public:
  static absl::StatusOr<std::unique_ptr<Authorizer>> Load(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Authorizer>> Parse(absl::string_view text,
                                                           absl::string_view source);

  // OK when the call carries "authorization: Bearer <token>" with a token of `role` or admin;
  // UNAUTHENTICATED without a known token, PERMISSION_DENIED with another role's.
  grpc::Status Check(const grpc::ServerContext& context, Role role) const;

 private:
  Authorizer() = default;
  struct Token {
    Role role;
    std::string value;
  };
  std::vector<Token> tokens_;
};

// OK when `authorizer` is null (no tokens configured) or allows the call.
inline grpc::Status Authorize(const Authorizer* authorizer, const grpc::ServerContext* context,
                              Role role) {
  return authorizer == nullptr ? grpc::Status::OK : authorizer->Check(*context, role);
}

// How a server listens.
struct ServerSecurity {
  std::string tls_cert;       // PEM certificate chain; with tls_key: TLS
  std::string tls_key;        // PEM private key
  std::string tls_client_ca;  // PEM CA bundle: clients must present a certificate it signed
  std::string tokens;         // tokens file (Authorizer); empty: no token check
  // Serve without TLS, or without tokens, on an address other than loopback. Off: refused,
  // since anyone who reaches the port would read every patient.
  bool allow_plaintext = false;
  bool allow_no_tokens = false;
  bool reflection = false;  // gRPC server reflection (grpcurl); it has no token check
};

// The credentials for serving on `listen_address`, and the authorizer (null: no tokens). Refuses
// plaintext or tokenless serving off loopback unless allowed, naming the flag to give.
struct ServerAuth {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::shared_ptr<const Authorizer> authorizer;
};
absl::StatusOr<ServerAuth> MakeServerAuth(const ServerSecurity& security,
                                          const std::string& listen_address);

// True for 127.0.0.0/8, ::1 and "localhost" listen addresses (host:port, [v6]:port, unix:).
bool IsLoopbackAddress(absl::string_view listen_address);

// How a client connects.
struct ClientSecurity {
  std::string tls_ca;    // PEM CA bundle the server's certificate must chain to; set: TLS
  std::string tls_cert;  // PEM client certificate (mutual TLS), with tls_key
  std::string tls_key;
  std::string token_file;  // a file holding the bearer token to present
  // The name the server's certificate must carry when it is not the target's host (a sink
  // reached by IP address, or through a proxy).
  std::string tls_server_name;
};
struct ClientAuth {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string authorization;  // "Bearer <token>", or empty
};
// For connecting to `target` (host:port). A token is never sent in plaintext off loopback:
// kFailedPrecondition without tls_ca then.
absl::StatusOr<ClientAuth> MakeClientAuth(const ClientSecurity& security,
                                          const std::string& target);

}  // namespace tend

#endif  // TEND_AUTH_AUTH_H_
