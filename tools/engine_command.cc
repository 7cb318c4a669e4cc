// tend engine: folds the events topic into a state directory (tools/commands.h RunEngine).
#include "config/engine_config.h"
#include "tools/commands.h"
#include "tools/subcommand.h"

namespace tend {

SubcommandRun AddEngineCommand(CLI::App* app) {
  struct Flags {
    EngineCommandOptions engine;
    KafkaFlags kafka;
    bool sync = false;
    std::string config, rules;
    int64_t tick_s = absl::ToInt64Seconds(EngineCommandOptions().tick_interval);
    int decisions_retention_days = 0;
    int64_t status_s = absl::ToInt64Seconds(EngineCommandOptions().status_interval);
  };
  auto f = std::make_shared<Flags>();
  EngineCommandOptions& e = f->engine;
  e.engine.leave_cache_at_exit = true;  // the process exits when the engine stops
  auto* cmd = app->add_subcommand("engine", "Fold the events topic into a state directory.");
  cmd->add_option("--brokers", e.engine.brokers, "bootstrap servers")->required();
  cmd->add_option("--db", e.db_dir, "state directory (RocksDB)")->required();
  cmd->add_option("--grpc-listen", e.grpc_listen,
                  "serve tend.v1.Ingest and tend.v1.Query here, e.g. 127.0.0.1:7070");
  cmd->add_flag("--exit-when-idle", e.engine.exit_when_idle,
                "exit 0 once every assigned partition is folded and committed");
  cmd->add_option("--topic", e.engine.topic)->capture_default_str();
  cmd->add_option("--dlq-topic", e.engine.dlq_topic)->capture_default_str();
  cmd->add_option("--changelog", e.engine.changelog_topic,
                  "state changelog topic (compacted, partitioned like --topic; "
                  "deploy/create-topics.sh): each commit goes there, and a partition assigned "
                  "here is first restored from it, so partitions can move between instances "
                  "(docs/design.md, \"State that follows its partition\"). The dev broker has "
                  "tend.state.changelog");
  cmd->add_option("--group", e.engine.group_id, "consumer group id")->capture_default_str();
  AddCommitFlags(cmd, &e.engine, 60'000);
  cmd->add_flag("--sync", f->sync, "fsync the WAL on every commit (machine-crash safety)");
  AddKafkaFlag(cmd, &f->kafka);
  AddCacheFlag(cmd, &e.engine);
  cmd->add_option("--rules", f->rules,
                  "rules YAML (deploy/rules/default.yaml; `tend rules FILE` checks one)");
  cmd->add_option("--sink", e.sink,
                  "deliver reminder commands to this tend.v1.ReminderSink (host:port)");
  AddServerSecurityFlags(cmd, &e.grpc_security);
  AddClientSecurityFlags(cmd, "--sink", &e.sink_security);
  cmd->add_option("--sink-in-flight", e.sink_in_flight,
                  "deliveries to the sink in flight at once (one patient's stay in order)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--max-cohort-scans", e.max_cohort_scans,
                  "Query.CohortStats calls reading every patient at once (a gathered one's "
                  "part counts on each instance); beyond: RESOURCE_EXHAUSTED, retry later")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--tick-interval-s", f->tick_s,
                  "with --sink (LIVE mode): write a clock tick to every partition this "
                  "often so timers fire; 0: none (run `tend ticker`)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  cmd->add_option("--decisions-retention-days", f->decisions_retention_days,
                  "remove rule decisions (Explain's records) older than this many days as "
                  "the state is compacted; 0: keep them all")
      ->capture_default_str()
      ->check(CLI::Range(0, 36500));
  cmd->add_option("--status-interval-s", f->status_s,
                  "log a status line (records, rates, decisions, deliveries) this often; "
                  "0: none")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  cmd->add_option("--metrics-listen", e.metrics_listen,
                  "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 "
                  "(docs/design.md, \"Observability\")");
  cmd->add_option("--health-max-lag", e.health_max_lag,
                  "the gRPC health service answers SERVING once every assigned partition is at "
                  "most this many records behind its log")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--advertise", e.advertise,
                  "this instance's gRPC address as the other instances reach it (HOST:PORT): "
                  "joins --membership-topic, and Query's GetPatient and Explain are answered by "
                  "the owner of the patient's partition (forwarded), UNAVAILABLE while it moves");
  cmd->add_option("--membership-topic", e.membership_topic,
                  "compacted topic of one partition where instances say what they own")
      ->capture_default_str();
  cmd->add_option("--peer-tls-ca", e.peer_security.tls_ca,
                  "PEM CA the other instances' certificates chain to (forwarded queries over "
                  "TLS)");
  cmd->add_option("--cluster-key-file", e.cluster_key_file,
                  "keys every instance shares (one per line, the first signs; chmod 600): "
                  "member records are signed with it, and records without its MAC ignored "
                  "(required with --advertise off loopback, unless --unsigned-membership)");
  cmd->add_flag("--unsigned-membership", e.unsigned_membership,
                "hear member records without a MAC: alone, with --advertise off loopback, "
                "every well-formed record is believed (only where Kafka ACLs alone keep "
                "everyone but the engines from writing --membership-topic); with "
                "--cluster-key-file, records are signed and those without any MAC heard too, "
                "for a move to signed records without a gap");
  cmd->add_option("--config", f->config,
                  "engine config YAML (proto/tend/v1/config.proto; `tend config` prints one)");
  return [f](const std::atomic<bool>& stop) {
    EngineCommandOptions& e = f->engine;
    auto config = LoadEngineConfig(f->config, &e.engine.validation);
    if (!config.ok()) return Exit(config.status(), "engine");
    e.engine.projections = *std::move(config);
    auto rules = LoadRulesFlag(f->rules);
    if (!rules.ok()) return Exit(rules.status(), "engine");
    e.engine.rules = *std::move(rules);
    e.tick_interval = absl::Seconds(f->tick_s);
    e.status_interval = absl::Seconds(f->status_s);
    e.storage.decisions_retention = absl::Hours(24) * f->decisions_retention_days;
    e.engine.commit.sync = f->sync;
    if (absl::Status s = ParseKafkaFlags(f->kafka, &e.engine.kafka); !s.ok()) {
      return Exit(s, "engine");
    }
    return Exit(RunEngine(e, stop), "engine");
  };
}

}  // namespace tend
