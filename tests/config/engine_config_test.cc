// Specs of config/engine_config.h and base/yaml_proto.h: operators' YAML, checked against the
// tend.v1.EngineConfig schema, with errors that name the key, the value and what is allowed.
#include "config/engine_config.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/yaml_proto.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

std::string ErrorOf(const std::string& yaml) {
  auto c = ParseEngineConfig(yaml, "engine.yaml");
  return c.ok() ? "(accepted)" : std::string(c.status().message());
}

TEST_CASE("an empty config gives the documented defaults", "[config]") {
  auto c = ParseEngineConfig("", "engine.yaml");
  REQUIRE(c.ok());
  CHECK(c->default_time_zone_name == "Asia/Shanghai");
  CHECK(c->activation_messages == 3);
  CHECK(c->activation_window_days == 0);
  CHECK(c->pdc_threshold == 0.80);
  CHECK_FALSE(c->pdc_period_start.has_value());
  CHECK(c->lifecycle_new_days == 7);
  CHECK(c->lifecycle_active_days == 30);
  CHECK(c->lifecycle_silent_days == 90);
  CHECK(c->churn_unit_weeks);
  CHECK(c->bgnbd_r == 0.243);
  CHECK(c->bgnbd_alpha == 4.414);
  CHECK(c->bgnbd_a == 0.793);
  CHECK(c->bgnbd_b == 2.426);
  CHECK(c->rfm_frequency == std::array<double, 4>{2, 3, 5, 8});
  CHECK(c->rfm_currency == "CNY");
  CHECK(c->sensitive_keywords.size() == 4);
}

TEST_CASE("every key is read", "[config]") {
  auto c = ParseEngineConfig(R"(
time:
  default_time_zone: Europe/Berlin
activation: {messages_required: 5, window_days: 14}
adherence:
  pdc_threshold: 0.9
  pdc_period_start: 2026-01-01
  pdc_period_end: 2026-12-31
lifecycle: {new_days: 3, active_days: 14, silent_days: 60}
churn: {time_unit: DAY, r: 0.5, alpha: 10, a: 0.5, b: 3, horizon: 30}
rfm:
  recency_days: [7, 14, 28, 56]
  frequency: [2, 4, 6, 10]
  monetary_minor: [1000, 2000, 3000, 4000]
  currency: EUR
marketing:
  sensitive_keywords: [unsubscribe, "no more"]
)",
                             "engine.yaml");
  REQUIRE(c.ok());
  CHECK(c->default_time_zone_name == "Europe/Berlin");
  CHECK(c->activation_messages == 5);
  CHECK(c->activation_window_days == 14);
  CHECK(c->pdc_threshold == 0.9);
  CHECK(*c->pdc_period_start == absl::CivilDay(2026, 1, 1));
  CHECK(*c->pdc_period_end == absl::CivilDay(2026, 12, 31));
  CHECK(c->lifecycle_silent_days == 60);
  CHECK_FALSE(c->churn_unit_weeks);
  CHECK(c->bgnbd_alpha == 10);
  CHECK(c->churn_horizon == 30);
  CHECK(c->rfm_recency_days == std::array<double, 4>{7, 14, 28, 56});
  CHECK(c->rfm_currency == "EUR");
  CHECK(c->sensitive_keywords == std::vector<std::string>{"unsubscribe", "no more"});

  // The printed config reads back to the same values (what `tend config` prints is valid input).
  auto again = ParseEngineConfig(FormatEngineConfig(*c), "printed");
  REQUIRE(again.ok());
  CHECK(FormatEngineConfig(*again) == FormatEngineConfig(*c));
  CHECK(FoldParameters(*again) == FoldParameters(*c));
}

TEST_CASE("a bad config is refused naming the file, line, key, value and what is allowed",
          "[config]") {
  CHECK(ErrorOf("activation:\n  mesages_required: 3\n") ==
        "engine.yaml:2: activation.mesages_required: unknown key (allowed: messages_required, "
        "window_days)");
  CHECK(ErrorOf("activation:\n  messages_required: three\n") ==
        "engine.yaml:2: activation.messages_required: \"three\" is not allowed (allowed: 32-bit "
        "integer)");
  CHECK(ErrorOf("activation:\n  messages_required: 0\n") ==
        "engine.yaml: activation.messages_required: 0 is not allowed (allowed: 1..1000)");
  CHECK(ErrorOf("churn: {time_unit: MONTH}") ==
        "engine.yaml:1: churn.time_unit: \"MONTH\" is not allowed (allowed: one of DAY, WEEK)");
  CHECK(ErrorOf("churn: {r: -1}") ==
        "engine.yaml: churn.r: -1 is not allowed (allowed: a finite number > 0)");
  CHECK(ErrorOf("churn: {a: 1}").find("churn.a: 1 is not allowed") != std::string::npos);
  CHECK(ErrorOf("time: {default_time_zone: /usr/share/zoneinfo/UTC}") ==
        "engine.yaml: time.default_time_zone: \"/usr/share/zoneinfo/UTC\" is not allowed "
        "(allowed: an IANA time zone in the system's zoneinfo, e.g. Asia/Shanghai or UTC)");
  CHECK(ErrorOf("time: {default_time_zone: Mars/Olympus}") ==
        "engine.yaml: time.default_time_zone: \"Mars/Olympus\" is not allowed (allowed: an IANA "
        "time zone in the system's zoneinfo, e.g. Asia/Shanghai or UTC)");
  CHECK(ErrorOf("adherence: {pdc_threshold: 1.5}") ==
        "engine.yaml: adherence.pdc_threshold: 1.5 is not allowed (allowed: 0 < value <= 1)");
  CHECK(ErrorOf("adherence: {pdc_period_start: 2026-13-01}") ==
        "engine.yaml: adherence.pdc_period_start: \"2026-13-01\" is not allowed (allowed: a date "
        "YYYY-MM-DD)");
  CHECK(ErrorOf("adherence: {pdc_period_start: 2026-02-01, pdc_period_end: 2026-01-01}")
            .find("adherence.pdc_period_end") != std::string::npos);
  CHECK(ErrorOf("lifecycle: {active_days: 30, silent_days: 30}") ==
        "engine.yaml: lifecycle.silent_days: 30 is not allowed (allowed: more than active_days "
        "(30) and at most 36500)");
  CHECK(ErrorOf("rfm: {frequency: [1, 2, 3]}") ==
        "engine.yaml: rfm.frequency: [1, 2, 3] is not allowed (allowed: exactly 4 break points)");
  CHECK(ErrorOf("rfm: {frequency: [1, 3, 2, 4]}") ==
        "engine.yaml: rfm.frequency: [1, 3, 2, 4] is not allowed (allowed: strictly ascending "
        "break points)");
  CHECK(ErrorOf("rfm: {currency: yuan}").find("rfm.currency") != std::string::npos);
  CHECK(ErrorOf("marketing: {sensitive_keywords: [\"  \"]}") ==
        "engine.yaml: marketing.sensitive_keywords[0]: an empty keyword is not allowed (allowed: "
        "non-blank keywords)");
  CHECK(ErrorOf("rfm: {frequency: 3}") ==
        "engine.yaml:1: rfm.frequency: expected a list ([a, b] or - items)");
  CHECK(ErrorOf("activation: 3") ==
        "engine.yaml:1: activation: expected a mapping of messages_required, window_days");
  CHECK(ErrorOf("activation: {window_days: 1, window_days: 2}") ==
        "engine.yaml:1: activation.window_days: key given twice");
  CHECK(ErrorOf("activation: [").find("engine.yaml:1: not valid YAML") == 0);
}

TEST_CASE("a config file that cannot be read is NOT_FOUND naming the path", "[config]") {
  auto c = LoadEngineConfig("/nonexistent/engine.yaml");
  CHECK(c.status().code() == absl::StatusCode::kNotFound);
  CHECK(c.status().message() == "cannot read /nonexistent/engine.yaml");

  testing::TempDir dir;
  std::ofstream(dir.Sub("engine.yaml")) << "lifecycle:\n  new_days: 10\n";
  auto ok = LoadEngineConfig(dir.Sub("engine.yaml"));
  REQUIRE(ok.ok());
  CHECK(ok->lifecycle_new_days == 10);
}

TEST_CASE("a config file is read only if it is a regular file of bounded size", "[config]") {
  testing::TempDir dir;
  const std::string fifo = dir.Sub("fifo.yaml");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  auto c = LoadEngineConfig(fifo);  // opening it would block until a writer came
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(c.status().message() == fifo + ": not a regular file");

  const std::string big = dir.Sub("big.yaml");
  {
    std::ofstream out(big);
    out << "marketing:\n  sensitive_keywords:\n";
    while (out.tellp() <= kMaxYamlFileBytes) out << "    - keyword\n";
  }
  c = LoadEngineConfig(big);
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(c.status().message()),
             Catch::Contains(absl::StrCat("bytes; at most ", kMaxYamlFileBytes, " are read")));
}

TEST_CASE("an alias of a long string counts all the bytes it copies", "[config]") {
  std::string yaml = "log:\n  tickers: [&s \"" + std::string(1 << 20, 'a') + "\"";
  for (int i = 0; i < 20; ++i) yaml += ", *s";
  yaml += "]\n";
  CHECK_THAT(ErrorOf(yaml), Catch::Contains("bytes of values once its aliases (*name) are expanded"));
}

TEST_CASE("deploy/engine.yaml is valid and spells out the defaults", "[config]") {
  auto shipped = LoadEngineConfig(TEND_SOURCE_DIR "/deploy/engine.yaml");
  REQUIRE(shipped.ok());
  auto defaults = LoadEngineConfig("");
  REQUIRE(defaults.ok());
  CHECK(FormatEngineConfig(*shipped) == FormatEngineConfig(*defaults));
}

TEST_CASE("the log section says which records may move a clock, and is printed back",
          "[config]") {
  testing::TempDir dir;
  std::ofstream(dir.Sub("engine.yaml"))
      << "log:\n  max_recorded_ahead_s: 60\n  tickers: [ops-ticker, \"tend-ticker-prod*\"]\n"
      << "  dedupe_window_days: 7\n  dedupe_max_events: 100\n";
  ValidationOptions log;
  auto c = LoadEngineConfig(dir.Sub("engine.yaml"), &log);
  REQUIRE(c.ok());
  CHECK(log.max_recorded_ahead == absl::Seconds(60));
  CHECK(log.tickers == std::vector<std::string>{"ops-ticker", "tend-ticker-prod*"});
  CHECK(log.dedupe.window_s == 7 * 86400);
  CHECK(log.dedupe.max_events == 100);
  const std::string printed = FormatEngineConfig(*c, log);
  CHECK_THAT(printed, Catch::EndsWith("log:\n  max_recorded_ahead_s: 60\n  tickers: "
                                      "[\"ops-ticker\", \"tend-ticker-prod*\"]\n"
                                      "  dedupe_window_days: 7\n  dedupe_max_events: 100\n"));
  // What is printed reads back to the same.
  std::ofstream(dir.Sub("printed.yaml")) << printed;
  ValidationOptions again;
  REQUIRE(LoadEngineConfig(dir.Sub("printed.yaml"), &again).ok());
  CHECK(again.tickers == log.tickers);
  CHECK(again.max_recorded_ahead == log.max_recorded_ahead);
  CHECK(again.dedupe.window_s == log.dedupe.window_s);
  CHECK(again.dedupe.max_events == log.dedupe.max_events);

  auto error_of = [&](const std::string& yaml) {
    std::ofstream(dir.Sub("bad.yaml")) << yaml;
    ValidationOptions v;
    auto bad = LoadEngineConfig(dir.Sub("bad.yaml"), &v);
    return bad.ok() ? std::string("(accepted)") : std::string(bad.status().message());
  };
  CHECK_THAT(error_of("log: {max_recorded_ahead_s: 0}"),
             Catch::EndsWith("log.max_recorded_ahead_s: 0 is not allowed (allowed: 1..86400)"));
  CHECK_THAT(error_of("log: {tickers: [\"a b\"]}"),
             Catch::EndsWith("log.tickers[0]: \"a b\" is not allowed (allowed: a ticker name of "
                             "[A-Za-z0-9._:-], optionally ending in '*')"));
  CHECK_THAT(error_of("log: {tickers: [\"a*b\"]}"), Catch::Contains("log.tickers[0]"));
  CHECK(error_of("log: {tickers: [\"*\"]}") == "(accepted)");
  CHECK_THAT(error_of("log: {dedupe_window_days: 0}"),
             Catch::EndsWith("log.dedupe_window_days: 0 is not allowed (allowed: 1..3650)"));
  CHECK_THAT(error_of("log: {dedupe_max_events: 15}"),
             Catch::EndsWith("log.dedupe_max_events: 15 is not allowed (allowed: 16..65536)"));
}

TEST_CASE("a printed config reads back as itself, whatever its strings hold", "[config]") {
  // Found by fuzzing: a keyword holding a line break was printed inside double quotes as is,
  // and read back with the break folded into a space.
  auto config = ParseEngineConfig(
      "marketing:\n  sensitive_keywords: [\"line\\nbreak\", \"tab\\there\", \"quote\\\"d\", "
      "\"back\\\\slash\", \"\\x7f del\", \"\u6b62\"]\n",
      "test.yaml");
  REQUIRE(config.ok());
  REQUIRE(config->sensitive_keywords ==
          std::vector<std::string>{"line\nbreak", "tab\there", "quote\"d", "back\\slash",
                                   "\x7f del", "\u6b62"});
  const std::string printed = FormatEngineConfig(*config);
  auto again = ParseEngineConfig(printed, "printed.yaml");
  REQUIRE(again.ok());
  CHECK(again->sensitive_keywords == config->sensitive_keywords);
  CHECK(FormatEngineConfig(*again) == printed);
}

TEST_CASE("fold parameters: only what the fold itself uses", "[config]") {
  auto a = ParseEngineConfig("marketing: {sensitive_keywords: [Stop, unsubscribe]}", "a");
  auto b = ParseEngineConfig("marketing: {sensitive_keywords: [unsubscribe, stop]}\n"
                             "lifecycle: {silent_days: 120}",
                             "b");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(FoldParameters(*a) == FoldParameters(*b));  // order and case do not matter
  auto c = ParseEngineConfig("activation: {messages_required: 4}", "c");
  REQUIRE(c.ok());
  CHECK(FoldParameters(*c).at("activation.messages_required") == "4");
}

}  // namespace
}  // namespace tend
