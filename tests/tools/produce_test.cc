#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>

#include "base/time.h"
#include "dev/mock_broker.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "tests/testing.h"
#include "tools/commands.h"

namespace tend {
namespace {

TEST_CASE("produce reports each bad line by number and field, and produces the good ones",
          "[integration]") {
  auto broker = MockBroker::Start({});
  REQUIRE(broker.ok());
  auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
  REQUIRE(producer.ok());
  std::istringstream in(
      R"({"event_id":"e-1","patient_id":"p-1","occurred_at":"2026-01-01T08:00:00Z","scan":{"channel_id":"pharmacy"}})"
      "\n\n"
      R"({"event_id":"e-2","patient_id":"p-1","occurred_at":"2026-01-01T08:00:00Z","check_in":{"kind":"NOPE"}})"
      "\n"
      R"({"event_id":"e-3","patient_id":"p-1","occured_at":"2026-01-01T08:00:00Z"})"
      "\n"
      R"({"event_id":"e-4","patient_id":"p 1","occurred_at":"2026-01-01T08:00:00Z","scan":{"channel_id":"x"}})"
      "\n"
      R"({"event_id":"e-5","patient_id":"p-2","occurred_at":"2026-01-01T09:00:00Z","message":{"direction":"PATIENT_TO_STAFF","keywords":["sugar"]}})"
      "\n" +
      // Line 7: a 1 MiB line, refused unparsed; the next line is read as usual.
      std::string(1 << 20, 'x') + "\n" +
      R"({"event_id":"e-8","patient_id":"p-3","occurred_at":"2026-01-01T09:00:00Z","scan":{"channel_id":"pharmacy"}})"
      "\n"
      // Line 9: a terminal escape where JSON expects a value.
      "{\"patient_id\":\"x\",\"x\":\x1b[2J}");
  std::ostringstream errors;
  auto report = ProduceJsonl(in, producer->get(), "tend.events", errors);
  REQUIRE(report.ok());
  CHECK(report->lines == 8);
  CHECK(report->produced == 3);
  CHECK(report->bad == 5);
  // What the topic holds, read back: the good lines, each once, keyed by patient.
  std::multiset<std::pair<std::string, std::string>> in_topic;
  for (const auto& r : testing::ReadTopic((*broker)->bootstrap(), "tend.events")) {
    v1::Event e;
    REQUIRE(e.ParseFromString(r.value));
    CHECK(r.key == e.patient_id());
    in_topic.insert({e.event_id(), e.patient_id()});
  }
  CHECK(in_topic == std::multiset<std::pair<std::string, std::string>>{
                        {"e-1", "p-1"}, {"e-5", "p-2"}, {"e-8", "p-3"}});
  std::string e = errors.str();
  INFO(e);
  CHECK(e.find("line 3: ") != std::string::npos);
  CHECK(e.find("kind") != std::string::npos);
  CHECK(e.find("line 4: ") != std::string::npos);
  CHECK(e.find("occured_at") != std::string::npos);
  CHECK(e.find("line 5: patient_id: must be") != std::string::npos);
  CHECK(e.find("line 6") == std::string::npos);
  CHECK(e.find("line 7: longer than 131072 bytes") != std::string::npos);
  CHECK(e.find("line 8") == std::string::npos);
  // One line each, whatever the parser quoted: control bytes escaped.
  CHECK(e.find("line 9: ") != std::string::npos);
  CHECK(e.find('\x1b') == std::string::npos);
  int error_lines = 0;
  for (absl::string_view l : absl::StrSplit(e, '\n', absl::SkipEmpty())) {
    CHECK(absl::StartsWith(l, "line "));
    ++error_lines;
  }
  CHECK(error_lines == 5);
}

TEST_CASE("produce stamps recorded_at with the time of ingest unless the file is a historical "
          "import", "[integration]") {
  auto broker = MockBroker::Start({});
  REQUIRE(broker.ok());
  auto producer = Producer::Create({{"bootstrap.servers", (*broker)->bootstrap()}});
  REQUIRE(producer.ok());
  const std::string from_2099 =
      R"({"event_id":"e-1","patient_id":"p-1","recorded_at":"2099-01-01T00:00:00Z","occurred_at":"2026-01-01T08:00:00Z","scan":{"channel_id":"pharmacy"}})";
  const std::string from_2025 =
      R"({"event_id":"e-2","patient_id":"p-2","recorded_at":"2025-01-01T00:00:00Z","occurred_at":"2025-01-01T00:00:00Z","scan":{"channel_id":"pharmacy"}})";
  std::ostringstream errors;
  const absl::Time before = absl::Now();

  SECTION("by default a caller's recorded_at is replaced: it cannot move a partition clock") {
    std::istringstream in(from_2099 + "\n" + from_2025 + "\n");
    auto report = ProduceJsonl(in, producer->get(), "tend.events", errors);
    REQUIRE(report.ok());
    CHECK(report->produced == 2);
    CHECK(report->restamped == 2);
    auto records = testing::ReadTopic((*broker)->bootstrap(), "tend.events");
    REQUIRE(records.size() == 2);
    for (const auto& r : records) {
      v1::Event e;
      REQUIRE(e.ParseFromString(r.value));
      const absl::Time recorded = FromProtoTime(e.recorded_at());
      CHECK(recorded >= before - absl::Seconds(1));
      CHECK(recorded <= absl::Now());
      CHECK(r.timestamp_ms == absl::ToUnixMillis(recorded));
    }
  }

  SECTION("--historical keeps past recorded_at values and refuses future ones") {
    std::istringstream in(from_2099 + "\n" + from_2025 + "\n");
    auto report = ProduceJsonl(in, producer->get(), "tend.events", errors,
                               {.historical = true});
    REQUIRE(report.ok());
    CHECK(report->produced == 1);
    CHECK(report->bad == 1);
    CHECK(report->restamped == 0);
    CHECK_THAT(errors.str(), Catch::StartsWith("line 1: recorded_at: 2099-01-01T00:00:00+00:00 is "
                                               "in the future"));
    auto records = testing::ReadTopic((*broker)->bootstrap(), "tend.events");
    REQUIRE(records.size() == 1);
    v1::Event e;
    REQUIRE(e.ParseFromString(records[0].value));
    CHECK(e.event_id() == "e-2");
    CHECK(e.recorded_at().seconds() == 1735689600);
    CHECK(records[0].timestamp_ms == int64_t{1735689600} * 1000);
  }
}

}  // namespace
}  // namespace tend
