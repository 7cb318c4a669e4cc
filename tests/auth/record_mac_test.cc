// auth/record_mac.h: the cluster key file, and MACs that tell tend's records from anyone else's.
#include "auth/record_mac.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";
const std::string kOtherKey(40, 'o');

std::string ParseError(const std::string& text) {
  auto k = RecordKeys::Parse(text, "cluster.key");
  return k.ok() ? "(accepted)" : std::string(k.status().message());
}

TEST_CASE("a cluster key file is a key per line, and never echoes a key", "[auth]") {
  CHECK(ParseError("# the deployment's keys\n\n" + kKey + "\n  " + kOtherKey + "  \n") ==
        "(accepted)");
  CHECK(ParseError("# nothing\n") ==
        "cluster.key: no keys (one per line; `openssl rand -hex 32` makes one)");
  const std::string e = ParseError(kKey + "\nshort-key-of-31-characters-xxxx");
  CHECK(e ==
        "cluster.key:2: a key must be 32-512 characters of visible ASCII on a line of its own "
        "(e.g. `openssl rand -hex 32`)");
  CHECK(e.find("short-key") == std::string::npos);
  CHECK(ParseError(kKey + " " + kOtherKey) != "(accepted)");  // two on a line: not one key
  CHECK(ParseError(std::string(513, 'k')) != "(accepted)");
}

TEST_CASE("a record's MAC is HMAC-SHA256 over its domain, key and value", "[auth]") {
  auto keys = RecordKeys::Parse(kKey, "k");
  REQUIRE(keys.ok());
  // The format every instance must agree on, pinned by an independent computation (Python's
  // hmac): HMAC-SHA256(key, "tend.membership/1" NUL len(key) as 8 bytes big-endian, key, value).
  const std::string mac = (*keys)->Sign("tend.membership/1", "10.0.0.1:7070", "value");
  CHECK(absl::BytesToHexString(mac) ==
        "404ea44f7f93b9cf00aed65a8d7dfa5c722246150eab0f83649e9ea30e37b0f3");
  CHECK((*keys)->Verify("tend.membership/1", "10.0.0.1:7070", "value", mac));
  // Anything else it covers, changed: not verified.
  CHECK_FALSE((*keys)->Verify("tend.membership/2", "10.0.0.1:7070", "value", mac));
  CHECK_FALSE((*keys)->Verify("tend.membership/1", "10.0.0.2:7070", "value", mac));
  CHECK_FALSE((*keys)->Verify("tend.membership/1", "10.0.0.1:7070", "valuf", mac));
  // Where the key ends and the value begins is part of what is signed.
  CHECK_FALSE((*keys)->Verify("tend.membership/1", "10.0.0.1:707", "0value", mac));
  std::string flipped = mac;
  flipped[31] ^= 1;
  CHECK_FALSE((*keys)->Verify("tend.membership/1", "10.0.0.1:7070", "value", flipped));
  CHECK_FALSE((*keys)->Verify("tend.membership/1", "10.0.0.1:7070", "value", mac.substr(0, 16)));
  CHECK_FALSE((*keys)->Verify("tend.membership/1", "10.0.0.1:7070", "value", ""));

  // Another deployment's key: its MACs do not verify here.
  auto other = RecordKeys::Parse(kOtherKey, "k");
  REQUIRE(other.ok());
  CHECK_FALSE((*other)->Verify("tend.membership/1", "10.0.0.1:7070", "value", mac));
}

TEST_CASE("the first key signs and every key verifies, for rotation without a gap", "[auth]") {
  auto old_only = RecordKeys::Parse(kKey, "k");
  auto both_old_first = RecordKeys::Parse(kKey + "\n" + kOtherKey, "k");
  auto both_new_first = RecordKeys::Parse(kOtherKey + "\n" + kKey, "k");
  auto new_only = RecordKeys::Parse(kOtherKey, "k");
  REQUIRE((old_only.ok() && both_old_first.ok() && both_new_first.ok() && new_only.ok()));
  auto sign = [](const auto& keys) { return keys->Sign("d", "k", "v"); };
  auto verify = [](const auto& keys, const std::string& mac) {
    return keys->Verify("d", "k", "v", mac);
  };
  // Step 1, the new key added second: every instance still signs with the old one.
  CHECK(sign(*both_old_first) == sign(*old_only));
  CHECK(verify(*old_only, sign(*both_old_first)));
  // Step 2, the new key moved first: instances not yet moved (step 1) accept what moved ones sign.
  CHECK(sign(*both_new_first) == sign(*new_only));
  CHECK(verify(*both_old_first, sign(*both_new_first)));
  CHECK(verify(*both_new_first, sign(*both_old_first)));
  // Step 3, the old key removed: an instance still on step 2 is accepted; the old key is not.
  CHECK(verify(*new_only, sign(*both_new_first)));
  CHECK_FALSE(verify(*new_only, sign(*old_only)));
}

TEST_CASE("a cluster key file others may read is refused", "[auth]") {
  testing::TempDir dir;
  const std::string path = dir.Sub("cluster.key");
  std::ofstream(path) << kKey << "\n";
  ::chmod(path.c_str(), 0640);
  auto readable = RecordKeys::Load(path);
  REQUIRE_FALSE(readable.ok());
  CHECK(std::string(readable.status().message()) ==
        "the cluster key file " + path + " may be read by group or others; chmod 600 it");
  ::chmod(path.c_str(), 0600);
  auto keys = RecordKeys::Load(path);
  REQUIRE(keys.ok());
  CHECK((*keys)->size() == 1);
  CHECK_FALSE(RecordKeys::Load(dir.Sub("missing")).ok());
}

}  // namespace
}  // namespace tend
