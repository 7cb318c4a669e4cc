// tend bench: how close the engine comes to bare consumption of the same topic, in one process
// and one run (a ratio, so the noise of a shared machine mostly cancels out).
//   (1) raw: a librdkafka consumer reads every partition to its end and discards the records;
//   (2) engine: decode, validate, dedupe, fold, RocksDB commit of states + offsets (WAL on).
// Both rates are measured from the first record consumed to the last one processed (the engine's
// final commit included), so group-join time is excluded from both. `folded_eps` stops the
// engine's clock when the last record is folded, before the final commit: the rate of a
// sustained stream, where the last batch's write overlaps the folding of the next (every earlier
// commit, and any wait for one, is inside both rates).
// With --rules, (3) the engine deciding with them too; then (2) runs without rules in the same
// rounds, and `rules_ratio` is (3) against (2), the medians of the rounds' rates compared;
// `rules_ratio_rounds` lists each round's (3) against its own (2) (the rates of each round in
// `engine_eps_rounds` and `no_rules_eps_rounds`), and `rules_ratio_paired` is their median.
// `cpu_us_per_event` (and, with --rules, `no_rules_cpu_us_per_event`) is the process's CPU time per
// record of each fold, every thread counted: work done, which a busy shared machine disturbs less
// than a rate; `rules_cpu_ratio` is the no-rules engine's CPU per event over the rules engine's.
// `faults_per_event` (minor page faults of the process: memory touched for the first time) and
// `commit_bytes_per_event` (the commits' WriteBatch bytes) say what a fold's CPU went to;
// `fault_us` is what this host charges for one such fault (64 MiB touched before the rounds). A
// fresh engine faults its memory in, and the price was ~2.5 us a 4 KiB page on one VM and ~12 us on
// another (docs/benchmarks.md, "First-touch faults").
#include <sys/resource.h>

#include <algorithm>
#include <iostream>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "bench/bench.h"
#include "bench/cpu.h"
#include "dev/mock_broker.h"
#include "dev/simulate.h"
#include "engine/engine.h"
#include "kafka/consumer.h"
#include "kafka/kafka.h"
#include "storage/storage.h"

namespace tend {
namespace {

absl::StatusOr<double> RawConsumeRate(const std::string& brokers, const std::string& topic,
                                      int partitions, int64_t expected) {
  // The engine's pre-fetch queue, so that both read the broker alike.
  KafkaProps props = {{"bootstrap.servers", brokers},
                      {"group.id", "tend-bench-raw"},
                      {"enable.auto.commit", "false"},
                      {"enable.partition.eof", "true"}};
  for (auto& prop : PrefetchProps()) props.push_back(std::move(prop));
  TEND_ASSIGN_OR_RETURN(KafkaConf conf, MakeKafkaConf(props));
  char err[512];
  KafkaHandle rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err)));
  if (!rk) return absl::InternalError(err);
  conf.release();
  rd_kafka_poll_set_consumer(rk.get());
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  TEND_RETURN_IF_ERROR(FromKafka(rd_kafka_assign(rk.get(), list.get()), "assigning"));
  KafkaQueue queue(rd_kafka_queue_get_consumer(rk.get()));
  std::vector<rd_kafka_message_t*> msgs(4096);
  int64_t count = 0;
  int eofs = 0;
  absl::Time first, last;
  std::vector<bool> at_end(partitions, false);
  while (eofs < partitions) {
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 1000, msgs.data(), msgs.size());
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (count++ == 0) first = absl::Now();
        last = absl::Now();
      } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && !at_end[m->partition]) {
        at_end[m->partition] = true;
        ++eofs;
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_consumer_close(rk.get());
  if (count != expected) {
    return absl::DataLossError(absl::StrCat("raw consumer read ", count, " records, expected ",
                                            expected, " (mock broker retention exceeded? use more "
                                            "--partitions)"));
  }
  return count / absl::ToDoubleSeconds(last - first);
}

// Records the broker dropped from the start of `topic`'s partitions (the dev broker keeps only
// its newest segments).
absl::StatusOr<int64_t> ChangelogTruncated(const MockBroker& broker, const std::string& topic) {
  TEND_ASSIGN_OR_RETURN(auto producer, Producer::Create({{"bootstrap.servers", broker.bootstrap()}}));
  TEND_ASSIGN_OR_RETURN(auto offsets, TopicWatermarks(producer->handle(), topic));
  int64_t lost = 0;
  for (const PartitionOffsets& o : offsets) lost += o.low;
  return lost;
}

}  // namespace

absl::StatusOr<BenchLog> StartBenchLog(int partitions, int patients, int64_t events,
                                       uint64_t seed, bool long_ids) {
  MockBrokerOptions broker_options;
  broker_options.partitions = partitions;
  BenchLog log;
  TEND_ASSIGN_OR_RETURN(log.broker, MockBroker::Start(broker_options));
  log.topic = broker_options.topic;
  TEND_ASSIGN_OR_RETURN(auto producer,
                        Producer::Create({{"bootstrap.servers", log.broker->bootstrap()},
                                          {"linger.ms", "20"},
                                          {"batch.num.messages", "10000"}}));
  // The simulated cohort, all patients acquired on day 0, cut at `events` records.
  CohortOptions cohort;
  cohort.patients = patients;
  cohort.days = 3650;
  cohort.seed = seed;
  cohort.initial_share = 1.0;
  cohort.long_ids = long_ids;
  std::cerr << "producing " << events << " records..." << std::endl;
  absl::Status sim = SimulateCohort(cohort, [&](const v1::Event& e) -> absl::Status {
    if (log.records == events) return absl::CancelledError("enough");
    ++log.records;
    return ProduceEvent(producer.get(), log.topic, e);
  });
  if (!sim.ok() && !absl::IsCancelled(sim)) return sim;
  TEND_RETURN_IF_ERROR(producer->Flush(absl::Seconds(300)));
  if (producer->failed() > 0) return absl::UnavailableError("some records were not acknowledged");
  return log;
}

absl::Status RunBench(const BenchOptions& options, std::ostream& out) {
  TEND_ASSIGN_OR_RETURN(BenchLog log, StartBenchLog(options.partitions, options.patients,
                                                    options.events, options.seed,
                                                    options.long_ids));
  MockBroker* broker = log.broker.get();
  const int64_t produced = log.records;
  const double fault_us = FirstTouchMicrosPerPage();
  std::cerr << absl::StrFormat("this host: %.2f us of CPU a first-touched 4 KiB page", fault_us)
            << std::endl;

  // Each phase runs `repeat` times, alternating, and the medians are compared: on a shared
  // 2-core machine single runs vary by +-20%. With rules, the engine also runs without them in
  // each round: rules are measured against the engine that only folds (rules_ratio).
  std::vector<double> raw_rates, engine_rates, folded_rates, no_rules_rates, changelog_rates;
  // Per record of each fold: the process's CPU time (every thread: the engine's, its commit
  // writer's, RocksDB's and the in-process broker's), the measure of work that a busy shared
  // machine disturbs least; its minor page faults; the bytes its commits wrote.
  struct FoldCosts {
    std::vector<double> cpu_us, faults, commit_bytes;
  };
  FoldCosts engine_costs, no_rules_costs;
  EngineStats st, changelog_stats;
  std::string last_changelog;
  // One fold of the topic by a fresh engine and state directory: end-to-end and folding rates.
  auto fold = [&](int round, std::shared_ptr<const RuleSet> rules, const char* name,
                  EngineStats* stats, bool changelog = false,
                  FoldCosts* costs = nullptr)
      -> absl::StatusOr<std::pair<double, double>> {
    std::cerr << "round " << round + 1 << "/" << options.repeat << ": " << name << "..."
              << std::endl;
    TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-bench-"));
    TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
    EngineOptions engine_options;
    engine_options.brokers = broker->bootstrap();
    engine_options.group_id = absl::StrCat("tend-bench-engine-", name, "-", round);
    engine_options.exit_when_idle = true;
    engine_options.rules = std::move(rules);  // decisions only: no dispatcher in a benchmark
    engine_options.kafka = options.kafka;
    if (changelog) {
      // A topic of its own per fold: each starts from an empty changelog.
      engine_options.changelog_topic = absl::StrCat("tend.bench.changelog.", round);
      TEND_RETURN_IF_ERROR(broker->CreateTopic(engine_options.changelog_topic,
                                               options.partitions));
      last_changelog = engine_options.changelog_topic;
    }
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    std::atomic<bool> stop{false};
    const ProcessUsage before = ReadProcessUsage();
    TEND_RETURN_IF_ERROR(engine->Run(stop));
    absl::Time done = absl::Now();
    const ProcessUsage after = ReadProcessUsage();
    const double cpu_s = after.cpu_s - before.cpu_s;
    const int64_t faults = after.minor_faults - before.minor_faults;
    *stats = engine->stats();
    std::cerr << absl::StrFormat("  %.1f s of CPU, %d page faults, %d commits of %.1f MB",
                                 cpu_s, faults, stats->commits, stats->commit_bytes.sum / 1e6)
              << std::endl;
    if (costs != nullptr) {
      costs->cpu_us.push_back(cpu_s * 1e6 / produced);
      costs->faults.push_back(static_cast<double>(faults) / produced);
      costs->commit_bytes.push_back(stats->commit_bytes.sum / produced);
    }
    if (stats->records != produced) {
      return absl::DataLossError(
          absl::StrCat("engine consumed ", stats->records, " records, expected ", produced));
    }
    return std::make_pair(
        stats->records / absl::ToDoubleSeconds(done - stats->first_record_at),
        stats->records / absl::ToDoubleSeconds(stats->last_fold_at - stats->first_record_at));
  };
  for (int round = 0; round < options.repeat; ++round) {
    std::cerr << "round " << round + 1 << "/" << options.repeat << ": raw consumption..."
              << std::endl;
    TEND_ASSIGN_OR_RETURN(double raw, RawConsumeRate(broker->bootstrap(), log.topic,
                                                     options.partitions, produced));
    raw_rates.push_back(raw);
    if (options.rules != nullptr) {
      EngineStats no_rules_stats;
      TEND_ASSIGN_OR_RETURN(auto rates, fold(round, nullptr, "engine without rules",
                                             &no_rules_stats, false, &no_rules_costs));
      no_rules_rates.push_back(rates.first);
    }
    TEND_ASSIGN_OR_RETURN(auto rates, fold(round, options.rules,
                                           options.rules ? "engine with rules" : "engine", &st,
                                           false, &engine_costs));
    engine_rates.push_back(rates.first);
    folded_rates.push_back(rates.second);
    if (options.changelog) {
      TEND_ASSIGN_OR_RETURN(auto with, fold(round, options.rules, "engine with the changelog",
                                            &changelog_stats, /*changelog=*/true));
      changelog_rates.push_back(with.first);
    }
  }
  std::string changelog_fields;
  if (options.changelog) {
    // Takeover: every partition restored from the last fold's changelog into an empty
    // directory, against folding the log again (the engine's own rate above).
    TEND_ASSIGN_OR_RETURN(const int64_t lost, ChangelogTruncated(*broker, last_changelog));
    if (lost > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the dev broker dropped ", lost, " records of the changelog's oldest segments (it "
          "keeps ~5 MiB per partition): a restore would be incomplete. Use fewer --events or "
          "more --partitions"));
    }
    std::cerr << "takeover: restoring every partition from " << last_changelog << "..."
              << std::endl;
    TEND_ASSIGN_OR_RETURN(ScopedTempDir db_dir, ScopedTempDir::Create("tend-bench-"));
    TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(db_dir.path()));
    EngineOptions engine_options;
    engine_options.brokers = broker->bootstrap();
    engine_options.group_id = "tend-bench-takeover";
    engine_options.exit_when_idle = true;
    engine_options.rules = options.rules;
    engine_options.kafka = options.kafka;
    engine_options.changelog_topic = last_changelog;
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    std::atomic<bool> stop{false};
    const absl::Time start = absl::Now();
    TEND_RETURN_IF_ERROR(engine->Run(stop));
    const double restore_s = absl::ToDoubleSeconds(absl::Now() - start);
    const EngineStats taken = engine->stats();
    if (taken.records != 0) {
      return absl::InternalError(absl::StrCat("the takeover read ", taken.records,
                                              " records of the events topic again"));
    }
    std::vector<double> sorted = engine_rates;
    std::sort(sorted.begin(), sorted.end());
    const double rebuild_s = produced / sorted[sorted.size() / 2];
    double changelog_eps = changelog_rates[0];
    std::sort(changelog_rates.begin(), changelog_rates.end());
    changelog_eps = changelog_rates[changelog_rates.size() / 2];
    changelog_fields = absl::StrFormat(
        ",\"changelog_eps\":%.0f,\"changelog_ratio\":%.3f,\"changelog_records\":%d,"
        "\"takeover_restore_s\":%.2f,\"takeover_total_s\":%.2f,\"takeover_records\":%d,"
        "\"rebuild_s\":%.2f",
        changelog_eps, changelog_eps / sorted[sorted.size() / 2],
        changelog_stats.changelog_records, taken.restore_seconds, restore_s,
        taken.restored_records, rebuild_s);
  }
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const double raw_eps = median(raw_rates), engine_eps = median(engine_rates),
               folded_eps = median(folded_rates), no_rules_eps = median(no_rules_rates);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::string rules_fields;
  if (options.rules != nullptr) {
    // rules_cpu_ratio: the same comparison by work done, the CPU per event of the engine without
    // rules against the engine with them. The rates also carry the consumer's pauses (the
    // no-rules fold drains librdkafka's pre-fetch queue before its broker thread looks again:
    // kafka/consumer.h, PrefetchProps), which move the no-rules rate by a third from run to run;
    // the CPU per event barely moves. With both folds using the machine's cores, the rate ratio
    // tends to this one.
    // Each round's own ratio too, and their median: a round's two folds run back to back, so a
    // change in the host's speed over the run (which moves every fold's rate) moves both of a
    // pair; the ratio of the medians pairs folds of different rounds.
    std::vector<double> round_ratios;
    std::string rounds, engine_rounds, no_rules_rounds;
    for (size_t r = 0; r < engine_rates.size(); ++r) {
      round_ratios.push_back(engine_rates[r] / no_rules_rates[r]);
      const char* comma = r == 0 ? "" : ",";
      absl::StrAppendFormat(&rounds, "%s%.3f", comma, round_ratios.back());
      absl::StrAppendFormat(&engine_rounds, "%s%.0f", comma, engine_rates[r]);
      absl::StrAppendFormat(&no_rules_rounds, "%s%.0f", comma, no_rules_rates[r]);
    }
    rules_fields = absl::StrFormat(
        ",\"no_rules_eps\":%.0f,\"no_rules_ratio\":%.3f,\"rules_ratio\":%.3f,"
        "\"engine_eps_rounds\":[%s],\"no_rules_eps_rounds\":[%s],"
        "\"rules_ratio_rounds\":[%s],\"rules_ratio_paired\":%.3f,"
        "\"no_rules_cpu_us_per_event\":%.2f,\"rules_cpu_ratio\":%.3f,"
        "\"no_rules_faults_per_event\":%.3f,\"no_rules_commit_bytes_per_event\":%.0f",
        no_rules_eps, no_rules_eps / raw_eps, engine_eps / no_rules_eps, engine_rounds,
        no_rules_rounds, rounds, median(round_ratios), median(no_rules_costs.cpu_us),
        median(no_rules_costs.cpu_us) / median(engine_costs.cpu_us), median(no_rules_costs.faults),
        median(no_rules_costs.commit_bytes));
  }
  out << absl::StrFormat(
             "{\"events\":%d,\"patients\":%d,\"id_chars\":%d,\"partitions\":%d,\"repeat\":%d,"
             "\"raw_consume_eps\":%.0f,\"engine_eps\":%.0f,\"ratio\":%.3f,"
             "\"engine_eps_min\":%.0f,\"engine_eps_max\":%.0f,\"folded_eps\":%.0f,"
             "\"folded_ratio\":%.3f,\"cpu_us_per_event\":%.2f,\"faults_per_event\":%.3f,"
             "\"fault_us\":%.2f,\"commit_bytes_per_event\":%.0f,\"peak_rss_mb\":%.0f,"
             "\"duplicates\":%d,\"commits\":%d,\"timers_fired\":%d,\"decisions\":%d,"
             "\"commands\":%d%s%s}",
             produced, options.patients, options.long_ids ? 36 : 8, options.partitions,
             options.repeat, raw_eps, engine_eps,
             engine_eps / raw_eps, *std::min_element(engine_rates.begin(), engine_rates.end()),
             *std::max_element(engine_rates.begin(), engine_rates.end()), folded_eps,
             folded_eps / raw_eps, median(engine_costs.cpu_us), median(engine_costs.faults),
             fault_us, median(engine_costs.commit_bytes), ru.ru_maxrss / 1024.0,
             st.duplicates, st.commits, st.timers_fired, st.decisions, st.commands, rules_fields,
             changelog_fields)
      << std::endl;
  return absl::OkStatus();
}

}  // namespace tend
