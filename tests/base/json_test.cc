// base/json.h: proto3 JSON that protobuf's own parser reads back to an equal message.
#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cmath>
#include <map>

#include "base/json.h"
#include "projections/patient.h"
#include "tend/v1/commands.pb.h"
#include "tend/v1/rules.pb.h"
#include "tests/cohort.h"

namespace tend {
namespace {

template <typename M>
void RequireRoundTrip(const M& message) {
  JsonWriter json;
  std::string text;
  REQUIRE(json.Write(message, &text).ok());
  M back;
  const auto s = google::protobuf::util::JsonStringToMessage(text, &back);
  INFO(text);
  REQUIRE(s.ok());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(message, back));
}

TEST_CASE("JSON of every view and state of a simulated cohort reads back equal") {
  const auto config = projections::DefaultProjectionConfig();
  std::map<std::string, v1::PatientState> states;
  for (const v1::Event& e : testing::Cohort(60, 40, 3)) {
    RequireRoundTrip(e);
    projections::Apply(config, e, &states[e.patient_id()]);
  }
  for (const auto& [id, state] : states) {
    RequireRoundTrip(state);
    RequireRoundTrip(projections::ComputeView(config, state, absl::FromUnixSeconds(1767225600)));
  }
}

TEST_CASE("JSON values follow the proto3 mapping, maps sorted, zeros printed") {
  v1::PatientView v;
  v.set_patient_id("p\"1\\\n\x01");
  v.set_unique_events(12345678901234);
  v.mutable_as_of()->set_seconds(1767225600);
  v.mutable_as_of()->set_nanos(500000000);
  (*v.mutable_adherence()->mutable_check_in_days_by_kind())["WEIGHT"] = 2;
  (*v.mutable_adherence()->mutable_check_in_days_by_kind())["GLUCOSE"] = 5;
  v.mutable_adherence()->set_pdc(0.1);
  v.mutable_churn()->set_stage(v1::ChurnView::SILENT);
  v.mutable_churn()->set_p_alive(std::nan(""));
  JsonWriter json;
  std::string text;
  REQUIRE(json.Write(v, &text).ok());
  CHECK(text.rfind("{\"patient_id\":\"p\\\"1\\\\\\n\\u0001\",\"as_of\":\"2026-01-01T00:00:00.500Z\","
                   "\"time_zone\":\"\",\"unique_events\":\"12345678901234\"", 0) == 0);
  CHECK(text.find("\"check_in_days_by_kind\":{\"GLUCOSE\":5,\"WEIGHT\":2}") != std::string::npos);
  CHECK(text.find("\"pdc\":0.1,") != std::string::npos);
  CHECK(text.find("\"stage\":\"SILENT\"") != std::string::npos);
  CHECK(text.find("\"p_alive\":\"NaN\"") != std::string::npos);
  CHECK(text.find("\"conversion\"") == std::string::npos);  // unset sections are left out
  CHECK(text.find("\"pdc_by_ingredient\":{}") != std::string::npos);

  v1::Rule rule;
  rule.set_id("r");
  rule.mutable_policy()->mutable_cooldown()->set_seconds(90);
  rule.mutable_policy()->mutable_ttl()->set_nanos(500000000);
  RequireRoundTrip(rule);
  REQUIRE(json.Write(rule, &text).ok());
  CHECK(text.find("\"cooldown\":\"90s\"") != std::string::npos);
  CHECK(text.find("\"ttl\":\"0.500s\"") != std::string::npos);

  v1::ReminderCommand c;
  c.set_command_id("c1");
  (*c.mutable_parameters())["b"] = "2";
  (*c.mutable_parameters())["a"] = "1";
  c.mutable_explanation()->add_checks()->set_field("patient.x");
  RequireRoundTrip(c);
  REQUIRE(json.Write(c, &text).ok());
  CHECK(text.find("\"parameters\":{\"a\":\"1\",\"b\":\"2\"}") != std::string::npos);
}

}  // namespace
}  // namespace tend
