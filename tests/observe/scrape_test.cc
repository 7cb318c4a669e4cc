// observe/metrics.h and observe/health.h through the real binaries: a real Prometheus server
// (Debian's, installed by tools/dev) scrapes a running `tend engine` and `tend sink`; its HTTP
// API must report the targets up and the counters equal to what was folded, dead-lettered and
// delivered; promtool checks the exposition and the shipped alert rules (and runs their unit
// tests); the gRPC health service says NOT_SERVING before the engine caught up, SERVING after,
// and NOT_SERVING for a refused state directory.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "events/codec.h"
#include "kafka/kafka.h"
#include "kafka/partitioner.h"
#include "observe/health.h"
#include "storage/storage.h"
#include "tend/v1/cluster.pb.h"
#include "tend/v1/services.grpc.pb.h"
#include "tests/testing.h"

namespace tend {
namespace {

using testing::ExitCode;
using testing::HttpGet;
using testing::LoggedPort;
using testing::ReadFile;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";

// The value of the series printed exactly as `series` (name and labels as the exposition
// prints them) in a text exposition; nullopt when absent.
std::optional<double> Sample(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
      return std::strtod(std::string(line).c_str(), nullptr);
    }
  }
  return std::nullopt;
}

std::string UrlEncode(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      escaped += c;
    } else {
      absl::StrAppend(&escaped, "%", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return escaped;
}

// An instant query to Prometheus' HTTP API: its JSON answer.
google::protobuf::Struct QueryJson(int prometheus_port, const std::string& promql) {
  const auto body = HttpGet(prometheus_port, "/api/v1/query?query=" + UrlEncode(promql));
  google::protobuf::Struct json;
  if (body) REQUIRE(google::protobuf::util::JsonStringToMessage(*body, &json).ok());
  return json;
}

// The scalar result of an instant query (one series), or nullopt when it has none yet.
std::optional<double> Query(int prometheus_port, const std::string& promql) {
  const google::protobuf::Struct json = QueryJson(prometheus_port, promql);
  if (!json.fields().contains("data")) return std::nullopt;
  const auto& result = json.fields().at("data").struct_value().fields().at("result").list_value();
  if (result.values_size() != 1) return std::nullopt;
  // {"metric": {...}, "value": [time, "value"]}
  const auto& value = result.values(0).struct_value().fields().at("value").list_value();
  return std::strtod(value.values(1).string_value().c_str(), nullptr);
}

// The names of tend's metric families a dashboard or rule file uses (histogram series
// reduced to their family).
std::set<std::string> MetricNamesIn(const std::string& text) {
  std::set<std::string> names;
  for (size_t at = text.find("tend_"); at != std::string::npos; at = text.find("tend_", at)) {
    size_t end = at;
    while (end < text.size() && (std::islower(static_cast<unsigned char>(text[end])) ||
                                 std::isdigit(static_cast<unsigned char>(text[end])) ||
                                 text[end] == '_')) {
      ++end;
    }
    std::string name = text.substr(at, end - at);
    for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix)) {
        name.resize(name.size() - suffix.size());
      }
    }
    names.insert(name);
    at = end;
  }
  return names;
}

// Every PromQL expression of a Grafana dashboard, its variables filled in.
std::vector<std::string> DashboardQueries(const std::string& json_text) {
  google::protobuf::Struct json;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json_text, &json).ok());
  std::vector<std::string> out;
  for (const auto& panel : json.fields().at("panels").list_value().values()) {
    const auto& fields = panel.struct_value().fields();
    if (!fields.contains("targets")) continue;
    for (const auto& target : fields.at("targets").list_value().values()) {
      std::string expr = target.struct_value().fields().at("expr").string_value();
      expr = absl::StrReplaceAll(
          expr, {{"$__rate_interval", "1m"}, {"$job", ".*"}, {"$instance", ".*"}});
      out.push_back(expr);
    }
  }
  return out;
}


// Polls `fn` until it returns true, for up to `limit`.
template <typename Fn>
bool Eventually(Fn fn, absl::Duration limit) {
  return testing::WaitUntil(fn, limit, absl::Milliseconds(200));
}

// promtool's exit code, its output in the log.
int Promtool(const std::string& args, const std::string& log) {
  return std::system(absl::StrCat(kPromtool, " ", args, " >> '", log, "' 2>&1").c_str());
}

std::optional<bool> Health(int port, const std::string& service = "") {
  auto serving = CheckHealth(absl::StrCat("127.0.0.1:", port), {}, service, absl::Seconds(5));
  if (!serving.ok()) return std::nullopt;
  return *serving;
}

TEST_CASE("a Prometheus server scrapes a running engine and sink: targets up, counters equal to "
          "what was folded, dead-lettered and delivered, and promtool passes the exposition and the "
          "alert rules",
          "[integration]") {
  REQUIRE(access(kPrometheus, X_OK) == 0);  // tools/dev installs Debian's prometheus
  REQUIRE(access(kPromtool, X_OK) == 0);
  testing::TempDir dir;

  // A cohort (with its duplicate deliveries), first scans of today that the default pack
  // welcomes (commands that reach the sink), and two bad records.
  std::vector<v1::Event> events = testing::Cohort(40, 14, 7);
  const std::vector<v1::Event> scans = testing::RecentScans(25);
  events.insert(events.end(), scans.begin(), scans.end());
  const int64_t duplicates = testing::CountDuplicates(events);
  const int64_t unique = static_cast<int64_t>(events.size()) - duplicates;
  auto broker = testing::BrokerWith(events);
  {
    auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
    REQUIRE(producer.ok());
    REQUIRE((*producer)->Produce("tend.events", 0, "p-bad", "not an event", {}, nullptr).ok());
    v1::Event keyed = scans.front();
    keyed.set_event_id("keyed-wrong");
    std::string value;
    REQUIRE(keyed.SerializeToString(&value));
    REQUIRE((*producer)->Produce("tend.events", 1, "someone-else", value, {}, nullptr).ok());
    REQUIRE((*producer)->Flush(absl::Seconds(10)).ok());
  }

  const std::string sink_log = dir.Sub("sink.log");
  const pid_t sink = testing::SpawnTend(
      {"sink", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, sink_log);
  const int sink_port = LoggedPort(sink_log, "listening on ");
  const int sink_metrics = LoggedPort(sink_log, "/metrics (port ");

  // Advertised, with its member records signed, so that the membership's metrics (which an
  // alert reads) are exported and scraped too.
  const std::string engine_log = dir.Sub("engine.log");
  const std::string grpc_address = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::string cluster_key = dir.Sub("cluster.key");
  std::ofstream(cluster_key) << std::string(32, 'k') << "\n";
  REQUIRE(::chmod(cluster_key.c_str(), 0600) == 0);
  const pid_t engine = testing::SpawnTend(
      {"engine", "--brokers", broker->bootstrap(), "--db", dir.Sub("state"), "--rules",
       std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml", "--sink",
       absl::StrCat("127.0.0.1:", sink_port), "--tick-interval-s", "0", "--commit-interval-ms",
       "50", "--grpc-listen", grpc_address, "--advertise", grpc_address, "--cluster-key-file",
       cluster_key, "--metrics-listen", "127.0.0.1:0", "--health-max-lag", "0",
       "--max-cohort-scans", "3"},
      engine_log);
  const int engine_metrics = LoggedPort(engine_log, "/metrics (port ");
  const int engine_grpc = LoggedPort(engine_log, "listening on port ");
  INFO(ReadFile(engine_log));
  // The server comes up before the engine has its partitions (a consumer group's join takes
  // seconds): not serving yet, but Ingest (which needs only Kafka) does.
  CHECK(Health(engine_grpc) == std::optional<bool>(false));
  CHECK(Health(engine_grpc, "tend.v1.Query") == std::optional<bool>(false));
  CHECK(Health(engine_grpc, "tend.v1.Ingest") == std::optional<bool>(true));

  // SERVING once every partition is caught up; the counters then hold the whole log.
  REQUIRE(Eventually([&] { return Health(engine_grpc) == std::optional<bool>(true); },
                     absl::Seconds(60)));
  CHECK(Health(engine_grpc, "tend.v1.Query") == std::optional<bool>(true));
  std::string exposition;
  REQUIRE(Eventually(
      [&] {
        exposition = HttpGet(engine_metrics, "/metrics").value_or("");
        return Sample(exposition, "tend_records_folded_total") == std::optional<double>(unique);
      },
      absl::Seconds(30)));
  CHECK(Sample(exposition, "tend_duplicates_total") == std::optional<double>(duplicates));
  // Its own signed member records heard, none ignored: it is the one live instance.
  CHECK(Sample(exposition, "tend_membership_records_total{result=\"heard\"}").value_or(0) > 0);
  CHECK(Sample(exposition, "tend_membership_records_total{result=\"unsigned\"}") ==
        std::optional<double>(0));
  CHECK(Sample(exposition, "tend_membership_live_instances") == std::optional<double>(1));
  CHECK(Sample(exposition, "tend_records_consumed_total") ==
        std::optional<double>(events.size() + 2));
  CHECK(Sample(exposition, "tend_dead_letters_total{reason=\"undecodable\"}") ==
        std::optional<double>(1));
  CHECK(Sample(exposition, "tend_dead_letters_total{reason=\"key_mismatch\"}") ==
        std::optional<double>(1));
  CHECK(Sample(exposition, "tend_dead_letters_total{reason=\"invalid\"}") ==
        std::optional<double>(0));
  CHECK(Sample(exposition, "tend_partitions_assigned") == std::optional<double>(4));
  for (int p = 0; p < 4; ++p) {
    CHECK(Sample(exposition, absl::StrCat("tend_consumer_lag_records{partition=\"", p, "\"}")) ==
          std::optional<double>(0));
  }
  CHECK(Sample(exposition, "tend_serving") == std::optional<double>(1));
  // librdkafka's statistics (every 5 s, as --metrics-listen sets them): its own lag (against
  // the group's committed offsets, committed after the engine's commits), the log's start, the
  // one broker up, once (not again as the group coordinator).
  REQUIRE(Eventually(
      [&] {
        exposition = HttpGet(engine_metrics, "/metrics").value_or("");
        for (int p = 0; p < 4; ++p) {
          if (Sample(exposition, absl::StrCat("tend_kafka_group_lag_records{partition=\"", p,
                                              "\"}")) != std::optional<double>(0)) {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(30)));
  CHECK(Sample(exposition, "tend_kafka_log_start_offset{partition=\"0\"}") ==
        std::optional<double>(0));
  {
    int brokers = 0;
    for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
      if (absl::StartsWith(line, "tend_kafka_broker_up{")) {
        ++brokers;
        CHECK(absl::EndsWith(line, "} 1"));
      }
    }
    CHECK(brokers == 1);
  }
  CHECK(Sample(exposition, "tend_kafka_fetch_queue_messages{partition=\"1\"}") ==
        std::optional<double>(0));
  CHECK(Sample(exposition, "tend_cache_lookups_total").value_or(0) >= unique);
  // One lookup per event folded or dropped as a duplicate and per timer fired, each a hit or a
  // miss: counted apart (hits where they happen, misses where RocksDB is read).
  CHECK(Sample(exposition, "tend_cache_hits_total").value_or(-1) +
            Sample(exposition, "tend_cache_misses_total").value_or(-1) ==
        Approx(unique + duplicates +
               Sample(exposition, "tend_timers_fired_total").value_or(-1)));
  CHECK(Sample(exposition, "tend_cache_lookups_total") ==
        std::optional<double>(Sample(exposition, "tend_cache_hits_total").value_or(-1) +
                              Sample(exposition, "tend_cache_misses_total").value_or(-1)));
  CHECK(Sample(exposition, "tend_commit_duration_seconds_count") ==
        Sample(exposition, "tend_commits_total"));
  // The WAL holds what was committed since the last flush: more than nothing, at most about the
  // budget (StorageOptions::wal_budget_bytes).
  CHECK(Sample(exposition, "tend_rocksdb_wal_bytes").value_or(0) > 0);
  CHECK(Sample(exposition, "tend_rocksdb_wal_bytes").value_or(1e12) <
        3.0 * static_cast<double>(StorageOptions{}.wal_budget_bytes));
  CHECK(Sample(exposition, "tend_decisions_total{outcome=\"fired\",reason=\"none\"}").value_or(0) >
        0);

  // gRPC calls by method and code: one patient found, one not, a method that does not exist.
  {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", engine_grpc),
                                       grpc::InsecureChannelCredentials());
    auto query = v1::Query::NewStub(channel);
    for (const std::string& id : {scans.front().patient_id(), std::string("nobody")}) {
      grpc::ClientContext context;
      v1::GetPatientRequest request;
      request.set_patient_id(id);
      v1::GetPatientResponse response;
      (void)query->GetPatient(&context, request, &response);
    }
    grpc::GenericStub generic(channel);
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    grpc::Slice empty("");
    request = grpc::ByteBuffer(&empty, 1);
    // Unknown method names (hostile callers) count as "other", never as a new label.
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    generic.UnaryCall(&context, "/tend.v1.Query/NoSuchMethod", {}, &request, &response,
                      [&](grpc::Status) {
                        std::lock_guard<std::mutex> lock(mu);
                        done = true;
                        cv.notify_all();
                      });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; });
  }
  exposition = HttpGet(engine_metrics, "/metrics").value_or("");
  CHECK(Sample(exposition,
               "tend_grpc_requests_total{service=\"tend.v1.Query\",method=\"GetPatient\","
               "code=\"OK\"}") == std::optional<double>(1));
  CHECK(Sample(exposition,
               "tend_grpc_requests_total{service=\"tend.v1.Query\",method=\"GetPatient\","
               "code=\"NOT_FOUND\"}") == std::optional<double>(1));
  CHECK(exposition.find("NoSuchMethod") == std::string::npos);
  // The reads of every patient: the bound as configured, none running or refused.
  CHECK(Sample(exposition, "tend_cohort_scans_max") == std::optional<double>(3));
  CHECK(Sample(exposition, "tend_cohort_scans_running") == std::optional<double>(0));
  CHECK(Sample(exposition, "tend_cohort_scans_refused_total") == std::optional<double>(0));
  CHECK(Sample(exposition,
               "tend_grpc_requests_total{service=\"other\",method=\"other\","
               "code=\"UNIMPLEMENTED\"}") == std::optional<double>(1));

  // The welcome commands reach the sink; both sides count them alike.
  std::string sink_exposition;
  REQUIRE(Eventually(
      [&] {
        sink_exposition = HttpGet(sink_metrics, "/metrics").value_or("");
        return Sample(sink_exposition, "tend_sink_accepted_total").value_or(0) >= 1;
      },
      absl::Seconds(30)));

  // promtool on both expositions and on the shipped rules.
  const std::string promtool_log = dir.Sub("promtool.log");
  {
    std::ofstream(dir.Sub("engine.prom")) << exposition;
    std::ofstream(dir.Sub("sink.prom")) << sink_exposition;
  }
  INFO(ReadFile(promtool_log));
  CHECK(Promtool(absl::StrCat("check metrics < '", dir.Sub("engine.prom"), "'"), promtool_log) ==
        0);
  CHECK(Promtool(absl::StrCat("check metrics < '", dir.Sub("sink.prom"), "'"), promtool_log) ==
        0);
  const std::string rules = std::string(TEND_SOURCE_DIR) + "/deploy/prometheus/alerts.yml";
  CHECK(Promtool("check rules '" + rules + "'", promtool_log) == 0);
  CHECK(Promtool(absl::StrCat("test rules '", TEND_SOURCE_DIR,
                              "/deploy/prometheus/alerts_test.yml'"),
                 promtool_log) == 0);

  // A real Prometheus server scraping both, with the alert rules loaded.
  const int prometheus_port = testing::FreePort();
  {
    std::ofstream config(dir.Sub("prometheus.yml"));
    config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           << "rule_files: ['" << rules << "']\n"
           << "scrape_configs:\n"
           << "  - job_name: tend-engine\n    static_configs:\n      - targets: ['127.0.0.1:"
           << engine_metrics << "']\n"
           << "  - job_name: tend-sink\n    static_configs:\n      - targets: ['127.0.0.1:"
           << sink_metrics << "']\n";
  }
  const std::string prometheus_log = dir.Sub("prometheus.log");
  const pid_t prometheus = testing::Spawn(
      {kPrometheus, "--config.file=" + dir.Sub("prometheus.yml"),
       "--storage.tsdb.path=" + dir.Sub("tsdb"),
       absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port)},
      prometheus_log);
  INFO(ReadFile(prometheus_log));
  CHECK(Eventually([&] { return Query(prometheus_port, "up{job=\"tend-engine\"}") == 1.0; },
                   absl::Seconds(60)));
  CHECK(Eventually([&] { return Query(prometheus_port, "up{job=\"tend-sink\"}") == 1.0; },
                   absl::Seconds(30)));
  CHECK(Eventually(
      [&] {
        return Query(prometheus_port, "tend_records_folded_total") ==
               std::optional<double>(unique);
      },
      absl::Seconds(30)));
  CHECK(Query(prometheus_port, "tend_duplicates_total") == std::optional<double>(duplicates));
  CHECK(Query(prometheus_port, "sum(tend_dead_letters_total)") == std::optional<double>(2));
  CHECK(Eventually(
      [&] {
        const auto delivered =
            Query(prometheus_port, "tend_deliveries_total{result=\"delivered\"}");
        return delivered.has_value() &&
               delivered == Query(prometheus_port, "tend_sink_accepted_total");
      },
      absl::Seconds(30)));
  // The dashboard: every query is valid PromQL to this Prometheus, and every metric the
  // dashboard and the alert rules name is one the engine or the sink exports.
  const std::string dashboard = ReadFile(std::string(TEND_SOURCE_DIR) + "/deploy/grafana/tend.json");
  const std::vector<std::string> queries = DashboardQueries(dashboard);
  CHECK(queries.size() > 30);
  for (const std::string& q : queries) {
    INFO(q);
    // Valid, and with data: a query that names a wrong metric or joins on the wrong labels
    // returns nothing here, where both processes are scraped.
    CHECK(Eventually(
        [&] {
          const google::protobuf::Struct answer = QueryJson(prometheus_port, q);
          return answer.fields().contains("status") &&
                 answer.fields().at("status").string_value() == "success" &&
                 answer.fields().at("data").struct_value().fields().at("result").list_value()
                         .values_size() > 0;
        },
        absl::Seconds(10)));
  }
  std::set<std::string> used = MetricNamesIn(dashboard);
  for (const std::string& name : MetricNamesIn(ReadFile(rules))) used.insert(name);
  CHECK(used.size() > 30);
  for (const std::string& name : used) {
    INFO(name);
    const std::string type_line = "# TYPE " + name + " ";
    CHECK((exposition.find(type_line) != std::string::npos ||
           sink_exposition.find(type_line) != std::string::npos));
  }

  // The rules loaded and evaluated (12 groups' rules, each evaluated), and no alert fires on
  // this healthy pair.
  {
    const auto rules_body = HttpGet(prometheus_port, "/api/v1/rules");
    REQUIRE(rules_body.has_value());
    CHECK(rules_body->find("\"TendCommitStalled\"") != std::string::npos);
    const google::protobuf::Struct alerts = QueryJson(prometheus_port, "ALERTS");
    REQUIRE(alerts.fields().contains("status"));
    CHECK(alerts.fields().at("status").string_value() == "success");
    CHECK(alerts.fields().at("data").struct_value().fields().at("result").list_value()
              .values_size() == 0);
  }

  // A member record written without the cluster key (by whoever may write the topic): ignored
  // and counted, the engine still the one live instance.
  {
    auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
    REQUIRE(producer.ok());
    const v1::MemberRecord forged = testing::MemberRecordOf("10.9.9.9:7070", {0});
    REQUIRE((*producer)
                ->Produce("tend.membership", 0, forged.address(), forged.SerializeAsString(), {},
                          nullptr)
                .ok());
    REQUIRE((*producer)->Flush(absl::Seconds(10)).ok());
    CHECK(Eventually(
        [&] {
          const std::string text = HttpGet(engine_metrics, "/metrics").value_or("");
          return Sample(text, "tend_membership_records_total{result=\"unsigned\"}") ==
                     std::optional<double>(1) &&
                 Sample(text, "tend_membership_live_instances") == std::optional<double>(1);
        },
        absl::Seconds(10)));
  }

  kill(prometheus, SIGTERM);
  CHECK(ExitCode(prometheus) == 0);
  REQUIRE(kill(engine, SIGTERM) == 0);
  CHECK(ExitCode(engine) == 0);
  kill(sink, SIGTERM);
  CHECK(ExitCode(sink) == 0);
}

// Starts `tend engine` with metrics (and gRPC when `grpc`) on a damaged state directory made at
// `state`: tables without a CURRENT file, which storage/storage.h refuses.
pid_t EngineOnRefusedDirectory(const std::string& brokers, const std::string& state,
                               const std::string& log, bool grpc) {
  REQUIRE(std::system(absl::StrCat("mkdir -p '", state, "' && echo x > '", state,
                                   "/000009.sst'").c_str()) == 0);
  std::vector<std::string> args = {"engine", "--brokers", brokers, "--db", state,
                                   "--metrics-listen", "127.0.0.1:0"};
  if (grpc) args.insert(args.end(), {"--grpc-listen", "127.0.0.1:0"});
  return testing::SpawnTend(args, log);
}

TEST_CASE("an engine whose state directory is refused stays up NOT_SERVING, says so in its "
          "metrics, and starts once the directory opens",
          "[integration]") {
  testing::TempDir dir;
  auto broker = testing::StartBroker(1);
  const std::string state = dir.Sub("state"), log = dir.Sub("engine.log");
  const pid_t engine = EngineOnRefusedDirectory(broker->bootstrap(), state, log, /*grpc=*/true);
  const int metrics = LoggedPort(log, "/metrics (port ");
  INFO(ReadFile(log));
  const int refused_port = LoggedPort(log, "UNAVAILABLE) listening on port ");
  CHECK(Health(refused_port) == std::optional<bool>(false));
  CHECK(Sample(HttpGet(metrics, "/metrics").value_or(""), "tend_state_refused") ==
        std::optional<double>(1));
  CHECK(ReadFile(log).find("is damaged") != std::string::npos);
  {
    auto query = v1::Query::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", refused_port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id("p1");
    v1::GetPatientResponse response;
    const grpc::Status s = query->GetPatient(&context, request, &response);
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(s.error_message().find("refused") != std::string::npos);
  }

  // Cleared, the directory is not made anew (it is being repaired: an empty state would fold
  // from the start of the log); a good one moved in its place is opened at the next try.
  REQUIRE(std::remove((state + "/000009.sst").c_str()) == 0);
  absl::SleepFor(absl::Seconds(11));
  CHECK(Health(refused_port) == std::optional<bool>(false));
  CHECK(ReadFile(log).find("no tend state directory") != std::string::npos);
  {
    auto good = Storage::Open(dir.Sub("good"));
    REQUIRE(good.ok());
  }
  REQUIRE(std::system(absl::StrCat("rmdir '", state, "' && mv '", dir.Sub("good"), "' '", state,
                                   "'").c_str()) == 0);
  const int grpc_port = LoggedPort(log, "grpc.health.v1.Health) listening on port ");
  CHECK(Eventually([&] { return Health(grpc_port) == std::optional<bool>(true); },
                   absl::Seconds(60)));
  CHECK(Sample(HttpGet(metrics, "/metrics").value_or(""), "tend_state_refused") ==
        std::optional<double>(0));
  REQUIRE(kill(engine, SIGTERM) == 0);
  CHECK(ExitCode(engine) == 0);
}

TEST_CASE("an engine stopped while its state directory is refused exits 1", "[integration]") {
  testing::TempDir dir;
  auto broker = testing::StartBroker(1);
  const std::string state = dir.Sub("state"), log = dir.Sub("engine.log");
  const pid_t engine = EngineOnRefusedDirectory(broker->bootstrap(), state, log, /*grpc=*/false);
  LoggedPort(log, "/metrics (port ");
  INFO(ReadFile(log));
  REQUIRE(Eventually([&] { return ReadFile(log).find("trying again") != std::string::npos; },
                     absl::Seconds(30)));
  REQUIRE(kill(engine, SIGTERM) == 0);
  CHECK(ExitCode(engine) == 1);
}

TEST_CASE("an engine refuses only the partition whose state changelog is damaged: its patients "
          "UNAVAILABLE naming the damage, the others answered, NOT_SERVING, "
          "tend_partitions_refused 1",
          "[integration]") {
  testing::TempDir dir;
  const std::vector<v1::Event> events = testing::Cohort(40, 20, 17);
  auto broker = testing::BrokerWith(events);  // 4 partitions, the changelog topic
  const std::string rules = std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml";
  auto engine_args = [&](const std::string& state, const std::string& group) {
    return std::vector<std::string>{
        "engine", "--brokers", broker->bootstrap(), "--db", state, "--rules", rules, "--changelog",
        "tend.state.changelog", "--group", group, "--status-interval-s", "1",
        // A rebalance on the dev broker waits a session less a second for the group's
        // members (librdkafka's rdkafka_mock_cgrp.c): 5 s here, 44 s at the default session.
        "--kafka", "session.timeout.ms=6000", "--kafka", "heartbeat.interval.ms=500"};
  };
  // A first instance writes the changelog; then a record no tend writes lands in partition 1's.
  std::vector<std::string> first = engine_args(dir.Sub("first"), "first");
  first.push_back("--exit-when-idle");
  REQUIRE(ExitCode(testing::SpawnTend(first, dir.Sub("first.log"))) == 0);
  {
    auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
    REQUIRE(producer.ok());
    testing::ProduceDamagedChangelogRecord(producer->get(), "tend.state.changelog", 1);
  }

  // A second instance, in a directory of its own, restores every partition from the changelog.
  const std::string address = absl::StrCat("127.0.0.1:", testing::FreePort());
  std::vector<std::string> args = engine_args(dir.Sub("second"), "second");
  args.insert(args.end(), {"--grpc-listen", address, "--advertise", address, "--metrics-listen",
                           "127.0.0.1:0"});
  const std::string log = dir.Sub("second.log");
  const pid_t engine = testing::SpawnTend(args, log);
  const int metrics = LoggedPort(log, "/metrics (port ");
  const int grpc_port = LoggedPort(log, "listening on port ");
  std::string patient[2];  // one of partition 0, one of partition 1
  for (const v1::Event& e : events) {
    const int32_t p = KafkaPartition(e.patient_id(), 4);
    if (p < 2 && patient[p].empty()) patient[p] = e.patient_id();
  }
  REQUIRE(!patient[0].empty());
  REQUIRE(!patient[1].empty());
  auto query = v1::Query::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto get_via = [&](v1::Query::Stub* stub, const std::string& id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetPatientRequest request;
    request.set_patient_id(id);
    v1::GetPatientResponse response;
    return stub->GetPatient(&context, request, &response);
  };
  auto get = [&](const std::string& id) { return get_via(query.get(), id); };
  INFO(ReadFile(log));
  // Partition 0's patients are answered; partition 1's are UNAVAILABLE, the reason named (once
  // its restore has been tried: the partitions are restored one after another).
  auto refused_in = [](const std::string& path) {
    return Eventually(
        [&] { return ReadFile(path).find("partition 1 is REFUSED") != std::string::npos; },
        absl::Seconds(60));
  };
  // The refused partition's patient: UNAVAILABLE naming the partition and the record.
  auto check_refused = [&] {
    const grpc::Status refused = get(patient[1]);
    CHECK(refused.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(refused.error_message().find("partition 1 is refused by this instance") !=
          std::string::npos);
    CHECK(refused.error_message().find("tend.state.changelog[1] offset") != std::string::npos);
    CHECK(refused.error_message().find("format version") != std::string::npos);
    CHECK(refused.error_message().find("changelog-damage") == std::string::npos);  // inside
  };
  REQUIRE(refused_in(log));
  REQUIRE(Eventually([&] { return get(patient[0]).ok(); }, absl::Seconds(60)));
  check_refused();
  // Not ready, though the partitions it serves are caught up (and the gate, which looks every
  // second, has looked since): one of its partitions will not catch up. The metrics and the log
  // say why.
  std::string exposition;
  REQUIRE(Eventually(
      [&] {
        exposition = HttpGet(metrics, "/metrics").value_or("");
        for (int p : {0, 2, 3}) {
          if (Sample(exposition, absl::StrCat("tend_consumer_lag_records{partition=\"", p,
                                              "\"}")) != std::optional<double>(0)) {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(30)));
  absl::SleepFor(absl::Seconds(2));
  CHECK(Health(grpc_port) == std::optional<bool>(false));
  exposition = HttpGet(metrics, "/metrics").value_or("");
  CHECK(Sample(exposition, "tend_partitions_refused") == std::optional<double>(1));
  CHECK(Sample(exposition, "tend_partitions_assigned") == std::optional<double>(3));
  CHECK(Sample(exposition, "tend_serving") == std::optional<double>(0));
  CHECK(ReadFile(log).find("partition 1 is REFUSED: DATA_LOSS") != std::string::npos);
  CHECK(ReadFile(log).find("assigned 4 partitions of tend.events, 1 of them held back") !=
        std::string::npos);
  CHECK(ReadFile(log).find("changelog-damage") == std::string::npos);  // the mark stays inside
  CHECK(Eventually(
      [&] {
        return ReadFile(log).find("PARTITIONS REFUSED, held and not folded: 1 ") !=
               std::string::npos;
      },
      absl::Seconds(10)));

  // A second instance joins the group: whichever of the two is assigned partition 1 refuses it
  // in turn, and the other, which does not hold it, names the one that does and why (from the
  // membership topic), rather than saying that no instance owns it.
  const std::string address2 = absl::StrCat("127.0.0.1:", testing::FreePort());
  std::vector<std::string> args2 = engine_args(dir.Sub("third"), "second");
  args2.insert(args2.end(), {"--grpc-listen", address2, "--advertise", address2});
  const std::string log2 = dir.Sub("third.log");
  const pid_t engine2 = testing::SpawnTend(args2, log2);
  auto query2 =
      v1::Query::NewStub(grpc::CreateChannel(address2, grpc::InsecureChannelCredentials()));
  std::string said[2];  // what each instance answers for partition 1's patient
  const bool split = Eventually(
      [&] {
        v1::Query::Stub* stubs[2] = {query.get(), query2.get()};
        for (int i = 0; i < 2; ++i) {
          if (!get_via(stubs[i], patient[0]).ok()) return false;
          const grpc::Status s = get_via(stubs[i], patient[1]);
          if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
          said[i] = s.error_message();
        }
        // One holds it, the other names that one: both are in the group and heard.
        const bool first_holds = said[0].find("refused by this instance") != std::string::npos;
        const std::string& named = first_holds ? said[1] : said[0];
        return named.find(absl::StrCat("is refused by ", first_holds ? address : address2, " (")) !=
               std::string::npos;
      },
      absl::Seconds(90));
  INFO(said[0] + " | " + said[1]);
  INFO(ReadFile(log2));
  REQUIRE(split);
  // What the first instance's metrics say of the membership: both instances live, every record
  // heard (none signed: both advertise on loopback without a cluster key).
  const std::string members = HttpGet(metrics, "/metrics").value_or("");
  CHECK(Sample(members, "tend_membership_live_instances") == std::optional<double>(2));
  CHECK(Sample(members, "tend_membership_records_total{result=\"heard\"}").value_or(0) > 1);
  CHECK(Sample(members, "tend_membership_records_total{result=\"unsigned\"}") ==
        std::optional<double>(0));
  for (const std::string& message : said) {
    CHECK(message.find("tend.state.changelog[1] offset") != std::string::npos);
    CHECK(message.find("format version") != std::string::npos);
  }
  REQUIRE(kill(engine2, SIGTERM) == 0);
  CHECK(ExitCode(engine2) == 0);

  // Stopped, it exits 0: nothing it served was lost.
  REQUIRE(kill(engine, SIGTERM) == 0);
  CHECK(ExitCode(engine) == 0);

  // Started again without --advertise (no router: it answers from its own directory), it tries
  // the restore again and refuses the partition again; its copy is still not answered from, and
  // the calls that read every partition are refused too. (In a group of its own: the dev broker
  // makes a member that rejoins a group it left wait out its former self's session.)
  std::vector<std::string> alone = engine_args(dir.Sub("second"), "alone");
  alone.insert(alone.end(), {"--grpc-listen", address});
  const std::string alone_log = dir.Sub("alone.log");
  const pid_t lone = testing::SpawnTend(alone, alone_log);
  INFO(ReadFile(alone_log));
  REQUIRE(refused_in(alone_log));
  REQUIRE(Eventually([&] { return get(patient[0]).ok(); }, absl::Seconds(60)));
  check_refused();
  CHECK(get("nobody-folded").error_code() == grpc::StatusCode::UNAVAILABLE);  // maybe in it
  for (int p : {0, 1}) {
    grpc::ClientContext context;
    v1::ExplainRequest request;
    request.set_patient_id(patient[p]);
    v1::ExplainResponse response;
    CHECK(query->Explain(&context, request, &response).error_code() ==
          (p == 0 ? grpc::StatusCode::OK : grpc::StatusCode::UNAVAILABLE));
  }
  {
    grpc::ClientContext context;
    v1::CohortStatsRequest request;
    v1::CohortStatsResponse response;
    CHECK(query->CohortStats(&context, request, &response).error_code() ==
          grpc::StatusCode::UNAVAILABLE);
  }
  {
    grpc::ClientContext context;
    v1::ListPatientsRequest request;
    v1::ListPatientsResponse response;
    CHECK(query->ListPatients(&context, request, &response).error_code() ==
          grpc::StatusCode::UNAVAILABLE);
  }
  REQUIRE(kill(lone, SIGTERM) == 0);
  CHECK(ExitCode(lone) == 0);
}

}  // namespace
}  // namespace tend
