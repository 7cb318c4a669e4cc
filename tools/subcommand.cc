#include "tools/subcommand.h"

#include <iostream>

#include "absl/strings/str_cat.h"

namespace tend {

int Exit(const absl::Status& s, const std::string& command) {
  if (s.ok()) return 0;
  std::cerr << "tend " << command << ": " << s.message() << std::endl;
  return 1;
}

absl::Status ParseTimeFlag(const std::string& flag, const std::string& text, absl::Time* out) {
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, out, &err)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " must be an RFC 3339 time like 2026-01-01T00:00:00Z, got \"", text, "\""));
  }
  return absl::OkStatus();
}

absl::Status ParseOptionalTimeFlag(const std::string& flag, const std::string& text,
                                   std::optional<absl::Time>* out) {
  if (text.empty()) return absl::OkStatus();
  absl::Time t;
  if (absl::Status s = ParseTimeFlag(flag, text, &t); !s.ok()) return s;
  *out = t;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const RuleSet>> LoadRulesFlag(const std::string& path) {
  if (path.empty()) return std::shared_ptr<const RuleSet>();
  auto rules = RuleSet::Load(path);
  if (!rules.ok()) return rules.status();
  return std::make_shared<const RuleSet>(*std::move(rules));
}

absl::Status ParseKafkaFlags(const std::vector<std::string>& flags, KafkaProps* props) {
  for (const auto& kv : flags) {
    if (absl::Status s = ParseKafkaProp(kv, props); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void AddKafkaFlag(CLI::App* cmd, std::vector<std::string>* flags) {
  cmd->add_option("--kafka", *flags, "extra librdkafka property KEY=VALUE (repeatable)");
}

}  // namespace tend
