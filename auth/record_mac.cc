#include "auth/record_mac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "auth/secret_file.h"
#include "base/status.h"

namespace tend {
namespace {

// HMAC-SHA256 of domain || 0x00 || len(key) as 8 bytes big-endian || key || value: the domain
// ends at its NUL and the key's length is given, so no two (domain, key, value) share an input.
std::string Mac(absl::string_view secret, absl::string_view domain, absl::string_view key,
                absl::string_view value) {
  std::string message;
  message.reserve(domain.size() + 9 + key.size() + value.size());
  message.append(domain.data(), domain.size());
  message.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<char>((static_cast<uint64_t>(key.size()) >> shift) & 0xff));
  }
  message.append(key.data(), key.size());
  message.append(value.data(), value.size());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out,
           &out_len) == nullptr ||
      out_len != RecordKeys::kMacBytes) {
    return std::string();  // never equal to a MAC: nothing verifies
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RecordKeys>> RecordKeys::Load(const std::string& path) {
  TEND_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(path, "cluster key file", true));
  return Parse(text, path);
}

absl::StatusOr<std::shared_ptr<const RecordKeys>> RecordKeys::Parse(absl::string_view text,
                                                                    absl::string_view source) {
  std::shared_ptr<RecordKeys> keys(new RecordKeys());
  for (const SecretLine& line : SecretLines(text)) {
    // The line is never echoed: it holds a secret.
    if (!IsSecret(line.text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line.number, ": a key must be ", kMinSecretBytes, "-", kMaxSecretBytes,
          " characters of visible ASCII on a line of its own (e.g. `openssl rand -hex 32`)"));
    }
    keys->keys_.emplace_back(line.text);
  }
  if (keys->keys_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no keys (one per line; `openssl rand -hex 32` makes one)"));
  }
  return keys;
}

std::string RecordKeys::Sign(absl::string_view domain, absl::string_view key,
                             absl::string_view value) const {
  return Mac(keys_.front(), domain, key, value);
}

bool RecordKeys::Verify(absl::string_view domain, absl::string_view key, absl::string_view value,
                        absl::string_view mac) const {
  if (mac.size() != kMacBytes) return false;
  bool any = false;
  for (const std::string& secret : keys_) {
    const std::string expected = Mac(secret, domain, key, value);
    any |=
        expected.size() == kMacBytes && CRYPTO_memcmp(expected.data(), mac.data(), kMacBytes) == 0;
  }
  return any;
}

}  // namespace tend
