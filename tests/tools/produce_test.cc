#include <catch2/catch.hpp>
#include <sstream>

#include "dev/mock_broker.h"
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
      "\n");
  std::ostringstream errors;
  auto report = ProduceJsonl(in, producer->get(), "tend.events", errors);
  REQUIRE(report.ok());
  CHECK(report->lines == 5);
  CHECK(report->produced == 2);
  CHECK(report->bad == 3);
  std::string e = errors.str();
  INFO(e);
  CHECK(e.find("line 3: ") != std::string::npos);
  CHECK(e.find("kind") != std::string::npos);
  CHECK(e.find("line 4: ") != std::string::npos);
  CHECK(e.find("occured_at") != std::string::npos);
  CHECK(e.find("line 5: patient_id: must be") != std::string::npos);
  CHECK(e.find("line 6") == std::string::npos);
}

}  // namespace
}  // namespace tend
