// cluster/router.h without a cluster: where a forwarded call (with its caller's token) may go.
#include "cluster/router.h"

#include <catch2/catch.hpp>
#include <string>

namespace tend {
namespace {

TEST_CASE("a caller's token is forwarded off loopback only over TLS, and never by an instance "
          "advertised on loopback",
          "[cluster]") {
  // On loopback (no cluster key needed for its member records): loopback peers only, even with
  // plaintext allowed.
  ClusterRouter loopback("127.0.0.1:7070", 4, ClientSecurity(), /*allow_plaintext=*/true);
  CHECK(loopback.Peer("127.0.0.1:7071").ok());
  CHECK(loopback.Peer("[::1]:7071").ok());
  const auto away = loopback.Peer("10.0.0.1:7070");
  CHECK(away.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(away.status().message()),
             Catch::Contains("10.0.0.1:7070 is not on loopback") &&
                 Catch::Contains("advertises 127.0.0.1:7070"));

  // Off loopback: without TLS, only where TLS ends at a mesh (--plaintext).
  ClusterRouter plain("10.0.0.2:7070", 4, ClientSecurity());
  CHECK(plain.Peer("10.0.0.1:7070").status().code() == absl::StatusCode::kFailedPrecondition);
  ClusterRouter mesh("10.0.0.2:7070", 4, ClientSecurity(), /*allow_plaintext=*/true);
  CHECK(mesh.Peer("10.0.0.1:7070").ok());
}

}  // namespace
}  // namespace tend
