// The bar a signed member record must pass to be news (cluster/membership.h): per address, the
// `written_at` of the last signed record heard. A record not written after it is a copy of an
// older one written again (a replay, which its MAC does not tell apart), or its writer's clock
// went back.
//
// The bar is held at most `ahead` past the reader's clock, so that a writer whose clock ran
// ahead and was set right is silenced for at most that long; and it is kept for at most
// `max_addresses` addresses, past the members' own forgetting (whoever holds the key could
// otherwise make it grow for good): beyond them the address whose bar is lowest - the longest
// silent - is forgotten, and copies of its records would be heard again (each at most once, in
// the order of their times).
//
// Thread safety: not thread-safe (Membership holds it under its mutex).
#ifndef TEND_CLUSTER_REPLAY_BAR_H_
#define TEND_CLUSTER_REPLAY_BAR_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tend {

class ReplayBar {
 public:
  ReplayBar(size_t max_addresses, absl::Duration ahead)
      : max_addresses_(max_addresses), ahead_(ahead) {}

  // The bar of `address` when a record written at `written_at` does not pass it (is not after
  // it); nullopt when the record is news.
  std::optional<absl::Time> Blocks(absl::string_view address, absl::Time written_at) const;
  // A signed record of `address` written at `written_at` was heard at `now`: the bar moves to it,
  // held at most `ahead` past `now`.
  void Heard(absl::string_view address, absl::Time written_at, absl::Time now);

  size_t size() const { return bars_.size(); }

 private:
  const size_t max_addresses_;
  const absl::Duration ahead_;
  std::map<std::string, absl::Time, std::less<>> bars_;  // by address
};

}  // namespace tend

#endif  // TEND_CLUSTER_REPLAY_BAR_H_
