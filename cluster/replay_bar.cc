#include "cluster/replay_bar.h"

#include <algorithm>

namespace tend {

std::optional<absl::Time> ReplayBar::Blocks(absl::string_view address,
                                            absl::Time written_at) const {
  auto it = bars_.find(address);
  if (it == bars_.end() || written_at > it->second) return std::nullopt;
  return it->second;
}

void ReplayBar::Heard(absl::string_view address, absl::Time written_at, absl::Time now) {
  const absl::Time bar = std::min(written_at, now + ahead_);
  auto it = bars_.find(address);
  if (it != bars_.end()) {
    it->second = bar;
    return;
  }
  bars_.emplace(std::string(address), bar);
  if (bars_.size() > max_addresses_) {
    // A linear search, at most once per address new to the bar: only key holders add addresses.
    auto lowest = std::min_element(bars_.begin(), bars_.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    bars_.erase(lowest);
  }
}

}  // namespace tend
