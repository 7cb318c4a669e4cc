#include "auth/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "auth/secret_file.h"
#include "base/status.h"

namespace tend {
namespace {

bool ParseRole(absl::string_view name, Role* role) {
  for (Role r : {Role::kIngest, Role::kQuery, Role::kDeliver, Role::kAdmin}) {
    if (name == RoleName(r)) {
      *role = r;
      return true;
    }
  }
  return false;
}

// Compares in time that depends on the lengths only, never on where the bytes differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kIngest: return "ingest";
    case Role::kQuery: return "query";
    case Role::kDeliver: return "deliver";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Load(const std::string& path) {
  TEND_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(path, "tokens file", true));
  return Parse(text, path);
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Parse(absl::string_view text,
                                                              absl::string_view source) {
  std::unique_ptr<Authorizer> a(new Authorizer());
  for (const SecretLine& line : SecretLines(text)) {
    std::vector<absl::string_view> parts =
        absl::StrSplit(line.text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    Role role;
    // The line is never echoed: it holds a secret.
    if (parts.size() != 2 || !ParseRole(parts[0], &role)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line.number,
                       ": expected \"<role> <token>\" with a role of ingest, query, "
                       "deliver, admin"));
    }
    const absl::string_view token = parts[1];
    if (!IsSecret(token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line.number, ": a token must be ", kMinSecretBytes, "-", kMaxSecretBytes,
          " characters of visible ASCII (e.g. `openssl rand -hex 32`)"));
    }
    a->tokens_.push_back({role, std::string(token)});
  }
  if (a->tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no tokens"));
  }
  return a;
}

grpc::Status Authorizer::Check(const grpc::ServerContext& context, Role role) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no credentials: send the metadata \"authorization: Bearer <token>\"");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization metadata must be \"Bearer <token>\"");
  }
  // Every token is compared, whatever matches, so the time taken says nothing about which.
  bool known = false, allowed = false;
  for (const Token& t : tokens_) {
    const bool match = ConstantTimeEquals(value, t.value);
    known |= match;
    allowed |= match && (t.role == role || t.role == Role::kAdmin);
  }
  if (!known) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  if (!allowed) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("this call needs a token of role ", RoleName(role)));
  }
  return grpc::Status::OK;
}

bool IsLoopbackAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) return true;  // a local socket
  absl::string_view host = address;
  if (absl::ConsumePrefix(&host, "[")) {
    const size_t end = host.find(']');
    if (end == absl::string_view::npos) return false;
    return host.substr(0, end) == "::1";
  }
  const size_t colon = host.rfind(':');
  if (colon != absl::string_view::npos) host = host.substr(0, colon);
  if (host == "localhost") return true;
  // 127.0.0.0/8, written as four decimal octets.
  std::vector<absl::string_view> octets = absl::StrSplit(host, '.');
  if (octets.size() != 4 || octets[0] != "127") return false;
  for (absl::string_view o : octets) {
    int v;
    if (!absl::SimpleAtoi(o, &v) || v < 0 || v > 255) return false;
  }
  return true;
}

absl::StatusOr<ServerAuth> MakeServerAuth(const ServerSecurity& s,
                                          const std::string& listen_address) {
  ServerAuth auth;
  const bool loopback = IsLoopbackAddress(listen_address);
  if (s.tls_cert.empty() != s.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!s.tls_client_ca.empty() && s.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (s.tls_cert.empty()) {
    if (!loopback && !s.allow_plaintext) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to serve plaintext gRPC on ", listen_address,
          ", which is not a loopback address: give --tls-cert and --tls-key (or --plaintext if "
          "TLS ends in front of tend, e.g. at a service mesh)"));
    }
    auth.credentials = grpc::InsecureServerCredentials();
  } else {
    grpc::SslServerCredentialsOptions options;
    TEND_ASSIGN_OR_RETURN(std::string cert, ReadSecretFile(s.tls_cert, "--tls-cert file", false));
    TEND_ASSIGN_OR_RETURN(std::string key, ReadSecretFile(s.tls_key, "--tls-key file", true));
    options.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
    if (!s.tls_client_ca.empty()) {
      TEND_ASSIGN_OR_RETURN(options.pem_root_certs,
                            ReadSecretFile(s.tls_client_ca, "--tls-client-ca file", false));
      options.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    auth.credentials = grpc::SslServerCredentials(options);
  }
  if (s.tokens.empty()) {
    if (!loopback && !s.allow_no_tokens) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to serve gRPC on ", listen_address,
          " without tokens: anyone who reaches it could read every patient. Give --tokens FILE "
          "(or --no-tokens if the network alone decides who calls)"));
    }
  } else {
    TEND_ASSIGN_OR_RETURN(auth.authorizer, Authorizer::Load(s.tokens));
  }
  return auth;
}

absl::StatusOr<ClientAuth> MakeClientAuth(const ClientSecurity& s, const std::string& target) {
  ClientAuth auth;
  if (!s.token_file.empty() && s.tls_ca.empty() && !IsLoopbackAddress(target)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to send a token in plaintext to ", target,
        ", which is not a loopback address: give the server's CA (--sink-tls-ca) for TLS"));
  }
  if (s.tls_cert.empty() != s.tls_key.empty()) {
    return absl::InvalidArgumentError("a client certificate and its key go together");
  }
  if (s.tls_ca.empty()) {
    if (!s.tls_cert.empty()) {
      return absl::InvalidArgumentError("a client certificate needs the server's CA (TLS)");
    }
    auth.credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions options;
    TEND_ASSIGN_OR_RETURN(options.pem_root_certs, ReadSecretFile(s.tls_ca, "CA file", false));
    if (!s.tls_cert.empty()) {
      TEND_ASSIGN_OR_RETURN(options.pem_cert_chain,
                            ReadSecretFile(s.tls_cert, "client certificate", false));
      TEND_ASSIGN_OR_RETURN(options.pem_private_key,
                            ReadSecretFile(s.tls_key, "client key", true));
    }
    auth.credentials = grpc::SslCredentials(options);
  }
  if (!s.token_file.empty()) {
    TEND_ASSIGN_OR_RETURN(std::string token, ReadSecretFile(s.token_file, "token file", true));
    token = std::string(absl::StripAsciiWhitespace(token));
    if (token.empty() || !IsVisible(token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          s.token_file, ": must hold one token (visible ASCII, no spaces or line breaks)"));
    }
    auth.authorization = absl::StrCat("Bearer ", token);
  }
  return auth;
}

}  // namespace tend
