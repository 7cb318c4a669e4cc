// auth/auth.h without a server: the tokens file, loopback detection, and the refusals that keep
// an operator from exposing patient data by accident.
#include "auth/auth.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "tests/temp_dir.h"

namespace tend {
namespace {

const std::string kToken(40, 'q');

std::string ParseError(const std::string& text) {
  auto a = Authorizer::Parse(text, "tokens");
  return a.ok() ? "(accepted)" : std::string(a.status().message());
}

TEST_CASE("a tokens file is lines of role and token, and never echoes a token", "[auth]") {
  CHECK(ParseError("# comment\n\nquery " + kToken + "\ningest\t" + std::string(32, 'i') + "\n") ==
        "(accepted)");
  CHECK(ParseError("") == "tokens: no tokens");
  const std::string secret = "viewer " + kToken;
  const std::string e = ParseError(secret);
  CHECK(e == "tokens:1: expected \"<role> <token>\" with a role of ingest, query, deliver, admin");
  CHECK(e.find(kToken) == std::string::npos);
  CHECK(ParseError("query short") ==
        "tokens:1: a token must be 32-512 characters of visible ASCII (e.g. `openssl rand -hex "
        "32`)");
  CHECK(ParseError("query " + kToken + " extra") != "(accepted)");
}

TEST_CASE("loopback addresses, and the rest", "[auth]") {
  for (const char* a : {"127.0.0.1:7070", "127.1.2.3:0", "localhost:7070", "[::1]:7070",
                        "unix:/run/tend.sock"}) {
    INFO(a);
    CHECK(IsLoopbackAddress(a));
  }
  for (const char* a : {"0.0.0.0:7070", "[::]:7070", "10.0.0.5:7070", "127.0.0.1.evil.com:80",
                        "128.0.0.1:7070", "localhost.example.com:1", "[::1:7070", "127.0.0:1"}) {
    INFO(a);
    CHECK_FALSE(IsLoopbackAddress(a));
  }
}

TEST_CASE("serving off loopback needs TLS and tokens, or an explicit flag saying why not",
          "[auth]") {
  testing::TempDir dir;
  ServerSecurity s;
  auto plain = MakeServerAuth(s, "0.0.0.0:7070");
  CHECK(plain.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(plain.status().message()), Catch::Contains("--tls-cert and --tls-key"));
  s.allow_plaintext = true;
  auto no_tokens = MakeServerAuth(s, "0.0.0.0:7070");
  CHECK_THAT(std::string(no_tokens.status().message()), Catch::Contains("Give --tokens FILE"));
  s.allow_no_tokens = true;
  CHECK(MakeServerAuth(s, "0.0.0.0:7070").ok());
  // On loopback, development needs neither.
  CHECK(MakeServerAuth(ServerSecurity(), "127.0.0.1:0").ok());

  const std::string tokens = dir.Sub("tokens");
  std::ofstream(tokens) << "query " << kToken << "\n";
  ::chmod(tokens.c_str(), 0644);
  s.tokens = tokens;
  auto readable = MakeServerAuth(s, "127.0.0.1:0");
  CHECK(readable.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK_THAT(std::string(readable.status().message()), Catch::EndsWith("chmod 600 it"));
  ::chmod(tokens.c_str(), 0600);
  auto ok = MakeServerAuth(s, "127.0.0.1:0");
  REQUIRE(ok.ok());
  CHECK(ok->authorizer != nullptr);

  ServerSecurity half;
  half.tls_cert = dir.Sub("cert.pem");
  CHECK(MakeServerAuth(half, "127.0.0.1:0").status().message() ==
        "--tls-cert and --tls-key go together");
  ServerSecurity missing;
  missing.tls_cert = dir.Sub("none.pem");
  missing.tls_key = dir.Sub("none.key");
  CHECK(MakeServerAuth(missing, "127.0.0.1:0").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a client never sends its token in plaintext off loopback", "[auth]") {
  testing::TempDir dir;
  ClientSecurity s;
  s.token_file = dir.Sub("token");
  std::ofstream(s.token_file) << kToken << "\n";
  ::chmod(s.token_file.c_str(), 0600);
  auto remote = MakeClientAuth(s, "10.0.0.7:7171");
  CHECK(remote.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(remote.status().message()), Catch::Contains("--sink-tls-ca"));
  auto local = MakeClientAuth(s, "127.0.0.1:7171");
  REQUIRE(local.ok());
  CHECK(local->authorization == "Bearer " + kToken);
  std::ofstream(s.token_file) << "deliver " << kToken << "\n";  // a tokens-file line, not a token
  CHECK(MakeClientAuth(s, "127.0.0.1:7171").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tend
