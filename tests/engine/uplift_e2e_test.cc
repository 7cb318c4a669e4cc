// The uplift recovers a known effect end to end (issue 20): a simulated cohort in which the
// patients a global holdout holds out check in less (tend simulate's effect, chosen by the rules'
// own assignment hash), produced to the dev broker, folded by the engine with the default rule
// pack and the experiment, and compared by the report's reader.
//
// The truth is each patient's two potential outcomes: the same cohort simulated once with the
// effect on everyone and once on nobody, folded the same way. Their difference, averaged over
// the patients the uplift counts, is the effect the comparison estimates (the sample's average
// treatment effect). The 95% interval must cover it and exclude zero; in the cohort without an
// effect it must cover zero.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dev/simulate.h"
#include "rules/rules.h"
#include "tests/testing.h"
#include "tools/report.h"

namespace tend {
namespace {

constexpr char kExperiment[] = "global";
constexpr double kHoldout = 0.3;
constexpr double kDrop = 0.4;

std::string RulesFile(const testing::TempDir& dir) {
  std::ifstream in(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  const std::string pack((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string path = dir.Sub("rules.yaml");
  std::ofstream(path) << pack << "\nexperiments:\n  - {id: " << kExperiment
                      << ", holdout: " << kHoldout << "}\n";
  return path;
}

// The cohort with the effect on `holdout` of the patients (0: none), folded through the dev
// broker into `db`; its uplift for the experiment.
v1::ExperimentUplift Run(const testing::TempDir& dir, const std::string& name, double holdout,
                         v1::CohortStats* stats = nullptr) {
  CohortOptions cohort;
  cohort.patients = 1200;
  cohort.days = 56;
  cohort.seed = 20;
  if (holdout > 0) {
    cohort.effect_experiment = kExperiment;
    cohort.effect_holdout = holdout;
    cohort.effect_check_in_drop = kDrop;
  }
  std::vector<v1::Event> events;
  REQUIRE(SimulateCohort(cohort, [&](const v1::Event& e) {
            events.push_back(e);
            return absl::OkStatus();
          }).ok());
  const std::string rules_path = RulesFile(dir);
  auto rules = RuleSet::Load(rules_path);
  REQUIRE(rules.ok());
  EngineOptions options;
  options.rules = std::make_shared<const RuleSet>(*std::move(rules));
  const std::string db = dir.Sub(name);
  testing::FoldThroughKafka(events, db, options);

  ReportOptions report;
  report.db_dir = db;
  report.rules_path = rules_path;
  report.as_of = cohort.end;
  std::ostringstream progress;
  auto computed = ComputeCohortStats(report, progress);
  INFO(computed.status());
  REQUIRE(computed.ok());
  REQUIRE(computed->uplift_size() == 1);
  if (stats != nullptr) *stats = *computed;
  return computed->uplift(0);
}

const v1::UpliftComparison& Outcome(const v1::ExperimentUplift& u, const std::string& outcome) {
  for (const auto& c : u.comparisons()) {
    if (c.outcome() == outcome) return c;
  }
  FAIL("no comparison of " << outcome);
  return u.comparisons(0);
}

// The mean over both arms: the whole cohort's.
double Pooled(const v1::UpliftComparison& c) {
  return (c.arm_value() * static_cast<double>(c.arm_n()) +
          c.control_value() * static_cast<double>(c.control_n())) /
         static_cast<double>(c.arm_n() + c.control_n());
}

TEST_CASE("the uplift recovers a simulated effect end to end, and finds none where there is none",
          "[integration]") {
  testing::TempDir dir;
  v1::CohortStats stats;
  const v1::ExperimentUplift experiment = Run(dir, "experiment", kHoldout, &stats);
  const v1::ExperimentUplift nobody = Run(dir, "nobody", 0);
  const v1::ExperimentUplift everyone = Run(dir, "everyone", 1.0);

  const std::string outcome = "check_in_day_rate";
  // The same patients are counted in every world: assignment does not depend on the effect.
  CHECK(Outcome(nobody, outcome).arm_n() == Outcome(experiment, outcome).arm_n());
  CHECK(Outcome(everyone, outcome).control_n() == Outcome(experiment, outcome).control_n());
  const double truth = Pooled(Outcome(nobody, outcome)) - Pooled(Outcome(everyone, outcome));
  const v1::UpliftComparison& measured = Outcome(experiment, outcome);
  INFO("truth " << truth << "; measured " << measured.difference() << " [" << measured.ci_low()
                << ", " << measured.ci_high() << "], p " << measured.p_value() << ", holdout n "
                << measured.control_n() << ", treated n " << measured.arm_n());
  REQUIRE(measured.estimated());
  CHECK(truth > 0);
  CHECK(measured.ci_low() <= truth);
  CHECK(truth <= measured.ci_high());
  CHECK(measured.ci_low() > 0);  // the effect is found
  CHECK(measured.p_value() < 0.05);
  // In relative terms the treated check in on 1 / (1 - drop) times the days: the truth's own
  // ratio is near it (only the last day's "today counts once checked in" bends it).
  const double ratio = Pooled(Outcome(nobody, outcome)) / Pooled(Outcome(everyone, outcome));
  CHECK(ratio == Approx(1 / (1 - kDrop)).epsilon(0.05));

  // Without an effect the arms differ only by chance: the interval covers zero.
  const v1::UpliftComparison& none = Outcome(nobody, outcome);
  INFO("no effect: " << none.difference() << " [" << none.ci_low() << ", " << none.ci_high()
                     << "]");
  REQUIRE(none.estimated());
  CHECK(none.ci_low() <= 0);
  CHECK(0 <= none.ci_high());

  // The report shows it: a section, a chart, the table row.
  ReportOptions options;
  const std::string html = RenderReport(stats, options);
  CHECK(html.find("<h2>Uplift</h2>") != std::string::npos);
  CHECK(html.find("id=\"chart-uplift-0\"") != std::string::npos);
  CHECK(html.find("<td>check_in_day_rate</td>") != std::string::npos);
  // tend uplift prints it, as text and as JSON, from the same directory.
  const std::string text = FormatUplift(experiment);
  CHECK(text.find("experiment global: holdout ") != std::string::npos);
  CHECK(text.find("check_in_day_rate") != std::string::npos);
  const std::string log = dir.Sub("uplift.log");
  const pid_t pid = testing::SpawnTend({"uplift", "--db", dir.Sub("experiment"), "--rules",
                                        dir.Sub("rules.yaml"), "--as-of", "2026-01-01T00:00:00Z",
                                        "--experiment", kExperiment, "--json"},
                                       log);
  CHECK(testing::ExitCode(pid) == 0);
  const std::string printed = testing::ReadFile(log);
  INFO(printed);
  CHECK(printed.find("\"experiment\":\"global\"") != std::string::npos);
  CHECK(printed.find(absl::StrCat("\"control_n\":\"", measured.control_n(), "\"")) !=
        std::string::npos);
  const pid_t missing = testing::SpawnTend(
      {"uplift", "--db", dir.Sub("experiment"), "--rules", dir.Sub("rules.yaml"), "--experiment",
       "nope"},
      dir.Sub("missing.log"));
  CHECK(testing::ExitCode(missing) != 0);
  CHECK(testing::ReadFile(dir.Sub("missing.log")).find("no experiment \"nope\"") !=
        std::string::npos);
  WARN("truth " << truth << ", measured " << measured.difference() << " [" << measured.ci_low()
                << ", " << measured.ci_high() << "]; without an effect " << none.difference()
                << " [" << none.ci_low() << ", " << none.ci_high() << "]");
}

}  // namespace
}  // namespace tend
