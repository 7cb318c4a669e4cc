// Keys that tell tend's own records from records anyone else wrote, in Kafka topics that every
// instance trusts what it reads from (the membership topic: a record there names where queries
// and callers' tokens go). A record carries a MAC, HMAC-SHA256 (RFC 2104 with SHA-256 of FIPS
// 180-4, computed by OpenSSL's libcrypto) over what it says, under a key every instance of the
// deployment holds and no writer of the topic otherwise has (docs/design.md, "Member records
// are signed").
//
// Key file (`--cluster-key-file`): one key per line, 32-512 characters of visible ASCII (e.g.
// `openssl rand -hex 32`), a line starting with '#' is a comment, chmod 600. The first key
// signs; every key is accepted. Rotation without a gap: add the new key as a second line on
// every instance, then move it first on every instance, then remove the old one (restarting
// each instance at each step: the file is read at start).
//
// What the MAC covers: a domain naming the record kind and its format (so a MAC of one kind
// never passes as another's), the record's Kafka key and its value. Not where or when it was
// written to the topic (its offset, its Kafka timestamp): a record signed once can be written
// again by whoever can write the topic (a replay), and readers must bound what an old record can
// do (cluster/membership.h). A key is used as its text (trimmed), not decoded from hex.
//
// Thread safety: immutable once loaded; Sign and Verify may run on many threads.
#ifndef TEND_AUTH_RECORD_MAC_H_
#define TEND_AUTH_RECORD_MAC_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

class RecordKeys {
 public:
  static constexpr size_t kMacBytes = 32;  // SHA-256's output

  static absl::StatusOr<std::shared_ptr<const RecordKeys>> Load(const std::string& path);
  // `source` names the text in errors (a key is never echoed).
  static absl::StatusOr<std::shared_ptr<const RecordKeys>> Parse(absl::string_view text,
                                                                 absl::string_view source);

  // The MAC (kMacBytes) of (domain, key, value) under the first key. `domain` holds no NUL.
  std::string Sign(absl::string_view domain, absl::string_view key, absl::string_view value) const;
  // Whether `mac` is the MAC of (domain, key, value) under one of the keys; compared in time
  // that does not depend on where it differs.
  bool Verify(absl::string_view domain, absl::string_view key, absl::string_view value,
              absl::string_view mac) const;
  size_t size() const { return keys_.size(); }

 private:
  RecordKeys() = default;
  std::vector<std::string> keys_;
};

}  // namespace tend

#endif  // TEND_AUTH_RECORD_MAC_H_
