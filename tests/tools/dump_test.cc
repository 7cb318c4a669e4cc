// tend dump and tend fit-churn over a state folded by the real engine from a Kafka-protocol broker
// (librdkafka's mock cluster), RocksDB in temp dirs.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "config/engine_config.h"
#include "dev/mock_broker.h"
#include "storage/storage.h"
#include "tests/testing.h"
#include "tools/commands.h"
#include "tools/dump_format.h"

namespace tend {
namespace {

using testing::TempDir;

void FoldThroughKafka(const std::vector<v1::Event>& events, const std::string& db,
                      const projections::ProjectionConfig& config) {
  EngineOptions options;
  options.projections = config;
  testing::FoldThroughKafka(events, db, options);
}

std::string Dump(const DumpOptions& options) {
  std::ostringstream out;
  auto n = DumpPatients(options, out, std::cerr);
  REQUIRE(n.ok());
  return out.str();
}

// Rows of an RFC 4180 CSV text (quoted cells with doubled quotes; no line breaks in cells here).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
          cells.back() += '"';
          ++i;
        } else if (c == '"') {
          quoted = false;
        } else {
          cells.back() += c;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ',') {
        cells.emplace_back();
      } else {
        cells.back() += c;
      }
    }
    rows.push_back(std::move(cells));
  }
  return rows;
}

TEST_CASE("every CSV column is in the data dictionary, and docs/data-dictionary.md is current") {
  DumpColumns columns;
  REQUIRE(columns.columns().size() > 50);
  for (const auto& c : columns.columns()) {
    INFO(c.name);
    CHECK_FALSE(c.description.empty());
  }
  CHECK(columns.Find("churn.stage") != nullptr);
  CHECK(columns.Find("events_by_type.check_in") != nullptr);
  std::ifstream in(std::string(TEND_SOURCE_DIR) + "/docs/data-dictionary.md");
  const std::string checked_in((std::istreambuf_iterator<char>(in)), {});
  CHECK(checked_in == columns.Dictionary());  // else: tend dump --dictionary > docs/data-dictionary.md
}

TEST_CASE("CSV cells hold no control characters, no formulas and no ambiguous map entries",
          "[dump]") {
  v1::PatientView view;
  view.set_patient_id("p1");
  view.mutable_acquisition()->set_first_channel_id("=HYPERLINK(\"http://evil.example\",\"click\")");
  view.mutable_acquisition()->set_current_staff_id("s\x1b[31mRED");
  view.set_program_id(std::string("camp\0x", 6));
  (*view.mutable_adherence()->mutable_pdc_by_ingredient())["metformin;insulin=0.99"] = 1;
  (*view.mutable_adherence()->mutable_pdc_by_ingredient())["back\\slash"] = 0.5;
  view.mutable_coupons()->set_days_to_next_expiry(-1);  // a number: as it is
  DumpColumns columns;
  std::ostringstream out;
  columns.WriteHeader(out);
  columns.WriteRow(view, out);
  CHECK(out.str().find('\0') == std::string::npos);
  CHECK(out.str().find('\x1b') == std::string::npos);
  const auto rows = ParseCsv(out.str());
  REQUIRE(rows.size() == 2);
  std::map<std::string, std::string> cell;
  size_t channel_at = 0;
  for (size_t i = 0; i < rows[0].size(); ++i) {
    cell[rows[0][i]] = rows[1].at(i);
    if (rows[0][i] == "acquisition.first_channel_id") channel_at = i;
  }
  CHECK(cell.at("acquisition.first_channel_id") ==
        "'=HYPERLINK(\"http://evil.example\",\"click\")");
  CHECK(cell.at("acquisition.current_staff_id") == "s\\x1b[31mRED");
  CHECK(cell.at("program_id") == "camp\\x00x");
  CHECK(cell.at("adherence.pdc_by_ingredient") ==
        "back\\\\slash=0.5;metformin\\;insulin\\=0.99=1");
  CHECK(cell.at("coupons.days_to_next_expiry") == "-1");
  CHECK(cell.at("patient_id") == "p1");

  // Whatever a spreadsheet could take for a formula starts with an apostrophe; numbers as this
  // file writes them do not.
  for (const auto& [text, cell_text] : std::vector<std::pair<std::string, std::string>>{
           {"+8613800000000", "'+8613800000000"},
           {"@SUM(A1:A9)", "'@SUM(A1:A9)"},
           {"-inf", "'-inf"},
           {"-nan(x)", "'-nan(x)"},
           {"- 1", "'- 1"},
           {"-", "'-"},
           {"-12.5", "-12.5"},
           {"-1e+06", "-1e+06"},
           {"-2.5E-3", "-2.5E-3"},
           {"-1.", "'-1."},
           {"clinic-7", "clinic-7"}}) {
    view.mutable_acquisition()->set_first_channel_id(text);
    std::ostringstream row;
    columns.WriteRow(view, row);
    const auto parsed = ParseCsv(row.str());
    REQUIRE(parsed.size() == 1);
    INFO(text);
    CHECK(parsed[0].at(channel_at) == cell_text);
  }
}

TEST_CASE("dump filters (--where) are checked against the columns before anything is read") {
  DumpColumns columns;
  CHECK(ParseDumpFilters(columns, "").value().empty());
  auto ok = ParseDumpFilters(columns, "stage=silent, program=camp-1,risk>=0.5,activated=TRUE");
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 4);
  CHECK((*ok)[0].column->name == "churn.stage");
  CHECK((*ok)[0].value == "SILENT");
  CHECK((*ok)[2].op == ">=");
  CHECK((*ok)[2].number == 0.5);
  CHECK((*ok)[3].value == "true");
  auto message = [&](const std::string& where) {
    return std::string(ParseDumpFilters(columns, where).status().message());
  };
  CHECK_THAT(message("stge=silent"), Catch::Contains("unknown column \"stge\""));
  CHECK_THAT(message("stage=sleepy"), Catch::Contains("no value \"sleepy\""));
  CHECK_THAT(message("risk>=high"), Catch::Contains("is a number"));
  CHECK_THAT(message("program>=a"), Catch::Contains("only = and != compare it"));
  CHECK_THAT(message("stage"), Catch::Contains("is not COLUMN OP VALUE"));

  v1::PatientView view;
  view.mutable_churn()->set_stage(v1::ChurnView::SILENT);
  view.mutable_churn()->set_churn_risk(0.7);
  view.set_program_id("camp-1");
  CHECK(MatchesFilters(columns, *ParseDumpFilters(columns, "stage=SILENT,risk>0.5"), view));
  CHECK_FALSE(MatchesFilters(columns, *ParseDumpFilters(columns, "risk<0.5"), view));
  CHECK_FALSE(MatchesFilters(columns, *ParseDumpFilters(columns, "program!=camp-1"), view));
  std::ostringstream row;
  view.set_patient_id("p,\"1\"");
  columns.WriteRow(view, row);
  CHECK(row.str().rfind("\"p,\"\"1\"\"\",", 0) == 0);  // RFC 4180 quoting
}

TEST_CASE("replay equivalence: the same events in two arrival orders give identical dumps",
          "[integration]") {
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  std::vector<v1::Event> in_order = testing::Cohort(300, 60, 11);
  std::vector<v1::Event> shuffled = in_order;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));  // late events galore

  TempDir dir;
  FoldThroughKafka(in_order, dir.Sub("a"), config);
  FoldThroughKafka(shuffled, dir.Sub("b"), config);

  DumpOptions a, b;
  a.db_dir = dir.Sub("a");
  b.db_dir = dir.Sub("b");
  const std::string dump_a = Dump(a);
  CHECK(std::count(dump_a.begin(), dump_a.end(), '\n') == 300);
  CHECK(dump_a.find("\"as_of\":\"2025-12-31T") != std::string::npos);  // the partition clock (cohort ends 2026-01-01)
  CHECK(dump_a.find("\"stage\":\"ACTIVE\"") != std::string::npos);
  CHECK(dump_a == Dump(b));

  // At a chosen as-of too, and the stored states themselves.
  a.as_of = b.as_of = absl::FromUnixSeconds(1767225600) + absl::Hours(24 * 45);
  const std::string later = Dump(a);
  CHECK(later == Dump(b));
  CHECK(later != dump_a);
  CHECK(later.find("\"as_of\":\"2026-02-15T00:00:00Z\"") != std::string::npos);
  a.raw_state = b.raw_state = true;
  CHECK(Dump(a) == Dump(b));

  // CSV: a header and one row per patient with as many cells; the same values as the JSON;
  // --where keeps exactly the matching patients.
  DumpOptions csv;
  csv.db_dir = dir.Sub("a");
  csv.format = DumpOptions::Format::kCsv;
  const auto rows = ParseCsv(Dump(csv));
  REQUIRE(rows.size() == 301);
  const auto& header = rows[0];
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < header.size(); ++i) at[header[i]] = i;
  int silent = 0;
  for (size_t r = 1; r < rows.size(); ++r) {
    REQUIRE(rows[r].size() == header.size());
    silent += rows[r][at.at("churn.stage")] == "SILENT";
  }
  // Row order is the JSON's (key order): the first patients agree.
  CHECK(dump_a.rfind("{\"patient_id\":\"" + rows[1][at.at("patient_id")] + "\"", 0) == 0);
  size_t json_silent = 0;
  for (size_t pos = 0; (pos = dump_a.find("\"stage\":\"SILENT\"", pos)) != std::string::npos; ++pos) {
    ++json_silent;
  }
  CHECK(silent > 0);  // else the filter below is checked on nothing
  CHECK(static_cast<size_t>(silent) == json_silent);
  csv.where = "stage=silent";
  const auto filtered = ParseCsv(Dump(csv));
  CHECK(filtered.size() == static_cast<size_t>(silent) + 1);
  for (size_t r = 1; r < filtered.size(); ++r) CHECK(filtered[r][at.at("churn.stage")] == "SILENT");
}

TEST_CASE("a dump while the engine writes reflects one moment: per partition, its patients' "
          "events add up to the stamped checkpoint",
          "[integration]") {
  // The events arrive in chunks while the engine runs and a dump follows each chunk, so dumps
  // land beside a fold in progress however fast the engine is (an engine that folded the whole
  // cohort before the first dump once left this test comparing nothing).
  auto broker = testing::StartBroker(4);
  auto producer =
      Producer::Create({{"bootstrap.servers", broker->bootstrap()}, {"batch.num.messages", "50"}});
  REQUIRE(producer.ok());
  const std::vector<v1::Event> events = testing::Cohort(400, 90, 13);

  TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  EngineOptions options;
  options.brokers = broker->bootstrap();
  options.commit_interval = absl::Milliseconds(2);  // many small commits to land between
  options.commit_max_records = 300;
  auto engine = Engine::Create(options, storage->get());
  REQUIRE(engine.ok());
  std::atomic<bool> stop{false};
  absl::Status run;  // checked after the join: Catch2's assertions are for this thread
  std::thread runner([&] { run = (*engine)->Run(stop); });
  // A failed REQUIRE below unwinds through here: stop and join the engine, not std::terminate.
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } joiner{stop, runner};

  // `mid_fold`: dumps whose partitions held events while the cohort was not yet all produced
  // (so not all folded): the case this test is for, not only empty or finished directories.
  int dumps = 0, mid_fold = 0;
  auto dump_and_check = [&](bool cohort_produced) {
    DumpOptions dump;
    dump.db_dir = dir.path();
    dump.format = DumpOptions::Format::kCsv;
    std::ostringstream out;
    auto report = DumpPatients(dump, out, std::cerr);
    if (!report.ok()) {  // the engine may still be creating the directory
      CHECK(report.status().code() == absl::StatusCode::kUnavailable);
      return;
    }
    ++dumps;
    const auto rows = ParseCsv(out.str());
    std::map<std::string, size_t> at;
    for (size_t i = 0; i < rows[0].size(); ++i) at[rows[0][i]] = i;
    std::map<int, int64_t> by_partition;
    for (size_t r = 1; r < rows.size(); ++r) {
      by_partition[std::stoi(rows[r][at.at("partition")])] +=
          std::stoll(rows[r][at.at("unique_events")]);
    }
    int64_t applied = 0;
    for (const auto& c : report->checkpoints) {
      INFO("partition " << c.partition() << " at offset " << c.next_offset());
      CHECK(by_partition[c.partition()] == c.events_applied());
      applied += c.events_applied();
    }
    mid_fold += !cohort_produced && applied > 0;
  };
  constexpr size_t kChunks = 20;
  const size_t stride = events.size() / kChunks + 1;
  for (size_t begin = 0; begin < events.size(); begin += stride) {
    const std::vector<v1::Event> chunk(events.begin() + begin,
                                       events.begin() + std::min(events.size(), begin + stride));
    testing::ProduceAll(producer->get(), MockBrokerOptions().topic, chunk);
    if (begin == 0) {  // the engine joins its group and folds the first chunk before we go on
      const absl::Time joined = absl::Now() + absl::Seconds(60);
      auto applied = [&] {
        int64_t n = 0;
        for (const auto& c : testing::ReadCheckpoints(dir.path())) n += c.events_applied();
        return n;
      };
      while (applied() == 0 && absl::Now() < joined) absl::SleepFor(absl::Milliseconds(20));
    }
    dump_and_check(begin + stride >= events.size());
  }
  // Until every record is folded (checkpoints one past the last offset of each partition).
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  int64_t folded = 0;
  while (absl::Now() < deadline) {
    folded = 0;
    for (const auto& c : testing::ReadCheckpoints(dir.path())) folded += c.next_offset();
    if (folded == static_cast<int64_t>(events.size())) break;
    dump_and_check(true);
  }
  CHECK(folded == static_cast<int64_t>(events.size()));
  dump_and_check(true);  // the whole cohort, the engine still running
  stop = true;
  runner.join();
  CHECK(run.ToString() == "OK");
  // Every dump after the first chunk and before the last compared partitions holding events of
  // a cohort not yet folded whole.
  CHECK(dumps > static_cast<int>(kChunks));
  CHECK(mid_fold >= static_cast<int>(kChunks) - 2);
}

TEST_CASE("dump and fit-churn read with the engine's recorded config - a different fold "
          "config is refused",
          "[integration]") {
  projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  config.activation_messages = 2;
  config.lifecycle_active_days = 20;
  TempDir dir;
  FoldThroughKafka(testing::Cohort(400, 90, 3), dir.path(), config);

  DumpOptions dump;
  dump.db_dir = dir.path();
  const std::string with_recorded = Dump(dump);
  // The same config given explicitly reads the same.
  {
    std::ofstream(dir.Sub("engine.yaml")) << FormatEngineConfig(config);
    dump.config_path = dir.Sub("engine.yaml");
    CHECK(Dump(dump) == with_recorded);
  }
  // A config the state was not folded with is refused, naming the parameter.
  std::ofstream(dir.Sub("other.yaml")) << "activation: {messages_required: 3}\n";
  dump.config_path = dir.Sub("other.yaml");
  std::ostringstream ignored;
  auto refused = DumpPatients(dump, ignored, std::cerr);
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused.status().message().find("activation.messages_required") != absl::string_view::npos);

  // fit-churn prints a snippet the config accepts.
  FitChurnOptions fit;
  fit.db_dir = dir.path();
  std::ostringstream out, progress;
  auto report = FitChurn(fit, out, progress);
  REQUIRE(report.ok());
  CHECK(report->patients == 400);
  CHECK(report->customers > 300);
  CHECK(report->fit.converged);
  CHECK(report->fit.log_likelihood >= report->start_log_likelihood);
  auto parsed = ParseEngineConfig(out.str(), "fit-churn output");
  REQUIRE(parsed.ok());
  CHECK(parsed->bgnbd_r == Approx(report->fit.params.r).epsilon(1e-5));
  CHECK(parsed->bgnbd_b == Approx(report->fit.params.b).epsilon(1e-5));
}

TEST_CASE("an as-of flag outside 0001-01-01 to 9999-12-31 is refused before anything is read, one "
          "inside it is taken",
          "[integration]") {
  TempDir dir;
  const std::string db = dir.Sub("state");
  FoldThroughKafka(testing::Cohort(20, 30, 5), db, projections::DefaultProjectionConfig());
  int runs = 0;
  auto run = [&](const std::string& command, const std::string& as_of) {
    // A log of its own per run: SpawnTend appends, and one run's words must not pass another's.
    const std::string log = dir.Sub(absl::StrCat(command, "-", ++runs, ".log"));
    const pid_t pid = testing::SpawnTend(
        {command, "--db", db, "--out", dir.Sub(command + ".out"), "--as-of", as_of}, log);
    const int code = testing::ExitCode(pid);
    return std::make_pair(code, testing::ReadFile(log));
  };
  for (const std::string command : {"dump", "report"}) {
    // The year 292277026596 parses as a time; views at it once walked every ISO week to it,
    // for minutes, deaf to SIGTERM.
    for (const std::string as_of : {"292277026596-12-04T15:30:07Z", "10000-01-01T00:00:00Z"}) {
      const auto [code, said] = run(command, as_of);
      INFO(command << " --as-of " << as_of << ": " << said);
      CHECK(code != 0);
      CHECK_THAT(said, Catch::Contains("--as-of must be from 0001-01-01 to 9999-12-31"));
    }
    const auto [code, said] = run(command, "9999-12-31T23:59:59Z");
    INFO(command << ": " << said);
    CHECK(code == 0);
  }
}

TEST_CASE("a dump whose pipe's reader goes away stops there and says so", "[integration]") {
  TempDir dir;
  const std::string db = dir.Sub("state");
  FoldThroughKafka(testing::Cohort(300, 30, 5), db, projections::DefaultProjectionConfig());
  const std::string log = dir.Sub("dump.log");
  // `tend dump | head -c 100`: the reader takes 100 bytes of some 300 KB and closes.
  const std::string script = dir.Sub("dump-head.sh");
  std::ofstream(script) << "'" << TEND_BINARY << "' dump --db '" << db << "' 2>'" << log
                        << "' | head -c 100 > /dev/null; echo ${PIPESTATUS[0]}\n";
  FILE* shell = popen(absl::StrCat("bash '", script, "'").c_str(), "r");
  REQUIRE(shell != nullptr);
  char status[16] = {};
  REQUIRE(fgets(status, sizeof status, shell) != nullptr);
  pclose(shell);
  CHECK(std::string(status) == "1\n");
  CHECK_THAT(testing::ReadFile(log),
             Catch::Contains("tend dump: the dump's reader closed its end of the pipe (as `| head` "
                             "does); the dump stopped there"));
}

TEST_CASE("an error quoting a huge input is cut to 4 KiB, its control characters escaped",
          "[integration]") {
  TempDir dir;
  const std::string rules = dir.Sub("rules.yaml");
  // A template parameter naming a field no view has: the error quotes the 3 MB path.
  std::ofstream(rules)
      << "rules:\n  - id: hello\n    version: 1\n    trigger: {event: {kind: scan}}\n"
      << "    action: {reminder: {template_id: hi, channel: CHAT, parameters: "
      << "{name: \"{patient.\\e[2J" << std::string(3'000'000, 'x') << "}\"}}}\n"
      << "    policy: {category: CARE, ttl: 1h}\n";
  const std::string log = dir.Sub("rules.log");
  const int code = testing::ExitCode(testing::SpawnTend({"rules", rules}, log));
  const std::string said = testing::ReadFile(log);
  INFO(said.substr(0, 600));
  CHECK(code == 1);
  CHECK_THAT(said, Catch::StartsWith("tend rules: ") && Catch::Contains("parameters.name") &&
                       Catch::Contains("more bytes]"));
  CHECK(said.size() < 4096 + 200);
  CHECK(said.find('\x1b') == std::string::npos);
  CHECK_THAT(said, Catch::Contains("\\x1b[2J"));
}

TEST_CASE("tend dump of a damaged state directory exits 1 naming the damage, and leaves no "
          "output behind",
          "[integration]") {
  TempDir dir;
  const std::string db = dir.Sub("state");
  FoldThroughKafka(testing::Cohort(300, 30, 5), db, projections::DefaultProjectionConfig());
  {
    auto storage = Storage::Open(db);
    REQUIRE(storage.ok());
    REQUIRE((*storage)->Flush().ok());  // the patients in tables, not only in the WAL
  }
  // The largest table (the patient states), a byte flipped in its middle.
  std::string victim;
  uintmax_t largest = 0;
  for (const auto& f : std::filesystem::directory_iterator(db)) {
    if (f.path().extension() == ".sst" && f.file_size() > largest) {
      largest = f.file_size();
      victim = f.path().string();
    }
  }
  REQUIRE(largest > 4096);
  {
    std::fstream file(victim, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(largest / 3));
    const char c = static_cast<char>(file.get());
    file.seekp(static_cast<std::streamoff>(largest / 3));
    file.put(static_cast<char>(c ^ 0x20));
  }
  const std::string out = dir.Sub("patients.jsonl");
  const std::string log = dir.Sub("dump.log");
  const pid_t pid = testing::SpawnTend({"dump", "--db", db, "--out", out}, log);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  std::ifstream in(log);
  const std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(said);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(said, Catch::Contains("Corruption") || Catch::Contains("is damaged"));
  CHECK_FALSE(std::filesystem::exists(out));
  CHECK_FALSE(std::filesystem::exists(out + ".partial"));
}

}  // namespace
}  // namespace tend
