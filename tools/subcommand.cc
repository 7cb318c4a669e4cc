#include "tools/subcommand.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "base/printable.h"
#include "base/status.h"
#include "base/time.h"
#include "kafka/props.h"

namespace tend {

namespace {
constexpr size_t kMaxErrorBytes = 4096;
}  // namespace

int Exit(const absl::Status& s, const std::string& command) {
  if (s.ok()) return 0;
  // Messages may quote their input (a file's key, a flag's value): escaped, then bounded (an
  // escape takes four bytes for one).
  std::cerr << "tend " << command << ": " << Bounded(Printable(s.message()), kMaxErrorBytes)
            << std::endl;
  return 1;
}

absl::Status ParseTimeFlag(const std::string& flag, const std::string& text, absl::Time* out) {
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, out, &err)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " must be an RFC 3339 time like 2026-01-01T00:00:00Z, got \"", text, "\""));
  }
  // As gRPC's as_of: a time far outside it (the year 292277026596 parses) made views walk
  // billions of days.
  if (!CheckProtoTime(ToProtoTime(*out), flag).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be from 0001-01-01 to 9999-12-31, got \"", text, "\""));
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

absl::Status ParseKafkaFlags(const KafkaFlags& flags, KafkaProps* props) {
  if (!flags.config_file.empty()) {
    TEND_RETURN_IF_ERROR(ReadKafkaConfigFile(flags.config_file, props));
  }
  return ParseKafkaFlags(flags.props, props);
}

void AddKafkaFlag(CLI::App* cmd, KafkaFlags* flags) {
  cmd->add_option("--kafka-config", flags->config_file,
                  "librdkafka properties file, KEY=VALUE lines (chmod 600; for SASL/SSL secrets)");
  cmd->add_option("--kafka", flags->props,
                  "extra librdkafka property KEY=VALUE (repeatable; overrides --kafka-config)");
}

void AddCacheFlag(CLI::App* cmd, EngineOptions* engine) {
  cmd->add_option_function<int64_t>(
         "--cache-mb", [engine](int64_t mb) { engine->cache_max_bytes = mb << 20; },
         "the write-back cache of patient states, in MiB (docs/design.md, \"Memory\")")
      ->default_str(std::to_string(EngineOptions().cache_max_bytes >> 20))
      ->check(CLI::Range(16, 1 << 20));
}

void AddCommitFlags(CLI::App* cmd, EngineOptions* engine, int64_t max_interval_ms) {
  cmd->add_option_function<int64_t>(
         "--commit-interval-ms",
         [engine](int64_t ms) { engine->commit_interval = absl::Milliseconds(ms); },
         "commit at least this often")
      ->default_str(std::to_string(absl::ToInt64Milliseconds(EngineOptions().commit_interval)))
      ->check(CLI::Range(int64_t{1}, max_interval_ms));
  cmd->add_option("--commit-max-records", engine->commit_max_records,
                  "commit once this many records are folded and timers fired (checked between "
                  "the batches read, of up to 4,096 records, and between timers)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
}

void AddServerSecurityFlags(CLI::App* cmd, ServerSecurity* s) {
  cmd->add_option("--tls-cert", s->tls_cert, "serve gRPC over TLS: PEM certificate chain");
  cmd->add_option("--tls-key", s->tls_key, "PEM private key of --tls-cert (chmod 600)");
  cmd->add_option("--tls-client-ca", s->tls_client_ca,
                  "mutual TLS: clients must present a certificate signed by this PEM CA");
  cmd->add_option("--tokens", s->tokens,
                  "bearer tokens per role, lines \"<ingest|query|deliver|admin> <token>\" "
                  "(chmod 600); calls without a token of their role are refused");
  cmd->add_flag("--plaintext", s->allow_plaintext,
                "allow plaintext gRPC on an address other than loopback (TLS ends in front)");
  cmd->add_flag("--no-tokens", s->allow_no_tokens,
                "allow serving an address other than loopback without --tokens");
  cmd->add_flag("--grpc-reflection", s->reflection,
                "serve gRPC reflection (for grpcurl; it has no token check)");
}

void AddClientSecurityFlags(CLI::App* cmd, const std::string& prefix, ClientSecurity* s) {
  cmd->add_option(prefix + "-tls-ca", s->tls_ca, "connect over TLS, trusting this PEM CA");
  cmd->add_option(prefix + "-tls-cert", s->tls_cert, "mutual TLS: PEM client certificate");
  cmd->add_option(prefix + "-tls-key", s->tls_key, "PEM private key of the client certificate");
  cmd->add_option(prefix + "-tls-server-name", s->tls_server_name,
                  "the name the server's certificate carries, when not the target's host");
  cmd->add_option(prefix + "-token-file", s->token_file,
                  "present the bearer token in this file (chmod 600)");
}

}  // namespace tend
