#include "tools/report.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/status.h"
#include "base/time.h"
#include "storage/storage.h"
#include "storage/views.h"
#include "projections/cohort.h"
#include "projections/patient.h"
#include "rules/rules.h"
#include "base/temp_dir.h"

namespace tend {
namespace {

std::string Esc(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

std::string Pct(double share) { return absl::StrFormat("%.1f%%", share * 100); }

constexpr int kWidth = 680;

std::string Open(const std::string& id, int height, const std::string& label) {
  return absl::StrFormat(
      "<svg class=\"chart\" id=\"%s\" role=\"img\" aria-label=\"%s\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\">\n",
      id, Esc(label), kWidth, height, kWidth, height);
}

// Horizontal bars: one row per (label, value), value text at the bar's end.
std::string HBars(const std::string& id, const std::string& label,
                  const std::vector<std::pair<std::string, double>>& rows,
                  const std::vector<std::string>& value_texts) {
  constexpr int kRow = 26, kLeft = 190, kRight = 110;
  const int height = std::max<int>(1, static_cast<int>(rows.size())) * kRow + 10;
  double max = 0;
  for (const auto& r : rows) max = std::max(max, r.second);
  std::string svg = Open(id, height, label);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int y = 5 + static_cast<int>(i) * kRow;
    const double w = max > 0 ? rows[i].second / max * (kWidth - kLeft - kRight) : 0;
    absl::StrAppendFormat(&svg,
                          "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"label\">%s</text>"
                          "<rect class=\"mark\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\"/>"
                          "<text x=\"%.1f\" y=\"%d\" class=\"value\">%s</text>\n",
                          kLeft - 8, y + 17, Esc(rows[i].first), kLeft, y + 3, std::max(w, 1.0),
                          kRow - 8, kLeft + w + 6, y + 17, Esc(value_texts[i]));
  }
  return svg + "</svg>\n";
}

// Vertical columns over a 0..1 axis of deciles, with an optional threshold line.
std::string Deciles(const std::string& id, const std::string& label, const v1::Histogram& h,
                    std::optional<double> threshold, const std::string& threshold_text) {
  constexpr int kHeight = 240, kLeft = 50, kBottom = 30, kTop = 20;
  const int plot_w = kWidth - kLeft - 20, plot_h = kHeight - kBottom - kTop;
  int64_t max = 0;
  for (int64_t c : h.count()) max = std::max(max, c);
  std::string svg = Open(id, kHeight, label);
  absl::StrAppendFormat(&svg, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
                        kLeft, kTop + plot_h, kLeft + plot_w, kTop + plot_h);
  const int n = h.count_size();
  for (int i = 0; i < n; ++i) {
    const double x = kLeft + plot_w * h.lower(i);
    const double w = plot_w * (h.upper(i) - h.lower(i)) - 2;
    const double bh = max > 0 ? static_cast<double>(h.count(i)) / max * plot_h : 0;
    absl::StrAppendFormat(&svg,
                          "<rect class=\"mark\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                          "height=\"%.1f\"><title>%.1f-%.1f: %d</title></rect>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"value\">%d"
                          "</text>\n",
                          x + 1, kTop + plot_h - bh, w, bh, h.lower(i), h.upper(i), h.count(i),
                          x + w / 2, kTop + plot_h - bh - 4, h.count(i));
  }
  for (int t = 0; t <= 10; t += 2) {
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" "
                                "class=\"tick\">%.1f</text>\n",
                          kLeft + plot_w * t / 10.0, kHeight - 10, t / 10.0);
  }
  if (threshold) {
    const double x = kLeft + plot_w * *threshold;
    absl::StrAppendFormat(&svg,
                          "<line class=\"threshold\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                          "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" "
                          "class=\"threshold-label\">%s</text>\n",
                          x, kTop - 5, x, kTop + plot_h, x - 4, kTop + 8, Esc(threshold_text));
  }
  return svg + "</svg>\n";
}

// The x axis line and a 0-100% y scale of a plot whose area starts at (left, top).
std::string PercentAxes(int left, int top, int plot_w, int plot_h) {
  std::string svg = absl::StrFormat(
      "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", left,
      top + plot_h, left + plot_w, top + plot_h);
  for (int t = 0; t <= 4; ++t) {
    absl::StrAppendFormat(&svg, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%d%%"
                                "</text>\n",
                          left - 6, top + plot_h * (1 - t / 4.0) + 4, t * 25);
  }
  return svg;
}

std::string Retention(const v1::CohortStats& s) {
  constexpr int kHeight = 260, kLeft = 50, kBottom = 30, kTop = 20;
  const int plot_w = kWidth - kLeft - 130, plot_h = kHeight - kBottom - kTop;
  const double max_day = s.retention_size() > 0 ? s.retention(s.retention_size() - 1).day() : 1;
  auto X = [&](double day) { return kLeft + plot_w * day / max_day; };
  auto Y = [&](double share) { return kTop + plot_h * (1 - share); };
  std::string svg = Open("chart-retention", kHeight, "Retention by days since first seen");
  svg += PercentAxes(kLeft, kTop, plot_w, plot_h);
  const char* names[2] = {"unbounded", "classic"};
  const char* classes[2] = {"series-a", "series-b"};
  for (int k = 0; k < 2; ++k) {
    std::string points;
    for (const auto& r : s.retention()) {
      if (r.eligible() == 0) continue;
      const double v = k == 0 ? r.unbounded() : r.classic();
      absl::StrAppendFormat(&points, "%.1f,%.1f ", X(r.day()), Y(v));
      absl::StrAppendFormat(&svg,
                            "<circle class=\"mark %s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>"
                            "day %d: %s of %d</title></circle>\n",
                            classes[k], X(r.day()), Y(v), r.day(), Pct(v), r.eligible());
    }
    absl::StrAppendFormat(&svg, "<polyline class=\"line %s\" points=\"%s\"/>\n", classes[k],
                          points);
    absl::StrAppendFormat(&svg,
                          "<rect class=\"%s\" x=\"%d\" y=\"%d\" width=\"12\" height=\"4\"/>"
                          "<text x=\"%d\" y=\"%d\" class=\"legend\">%s</text>\n",
                          classes[k], kLeft + plot_w + 10, kTop + 10 + k * 36,
                          kLeft + plot_w + 26, kTop + 15 + k * 36, names[k]);
  }
  for (const auto& r : s.retention()) {
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"tick\">"
                                "d%d</text>\n",
                          X(r.day()), kHeight - 10, r.day());
  }
  return svg + "</svg>\n";
}

std::string CohortWeeks(const v1::CohortStats& s) {
  constexpr int kHeight = 260, kLeft = 50, kBottom = 46, kTop = 20;
  const int plot_w = kWidth - kLeft - 20, plot_h = kHeight - kBottom - kTop;
  const int n = std::max(1, s.cohort_weeks_size());
  const double slot = static_cast<double>(plot_w) / n;
  std::string svg = Open("chart-cohort-weeks", kHeight, "Weekly check-in rate by cohort week");
  svg += PercentAxes(kLeft, kTop, plot_w, plot_h);
  for (int i = 0; i < s.cohort_weeks_size(); ++i) {
    const auto& w = s.cohort_weeks(i);
    const double x = kLeft + slot * i;
    const double bh = plot_h * w.weekly_check_in_rate();
    absl::StrAppendFormat(&svg,
                          "<rect class=\"mark\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                          "height=\"%.1f\"><title>%s: %s of weeks with a check-in, %d patients"
                          "</title></rect>\n",
                          x + 1, kTop + plot_h - bh, std::max(1.0, slot - 2), bh, w.week(),
                          Pct(w.weekly_check_in_rate()), w.patients());
    if (n <= 16 || i % ((n + 15) / 16) == 0) {
      absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" class=\"tick\" "
                                  "transform=\"rotate(-35 %.1f %d)\">%s</text>\n",
                            x + slot / 2, kTop + plot_h + 14, x + slot / 2, kTop + plot_h + 14,
                            w.week());
    }
  }
  return svg + "</svg>\n";
}

std::vector<std::string> Counts(const google::protobuf::RepeatedPtrField<v1::LabelCount>& rows,
                                int64_t total) {
  std::vector<std::string> out;
  for (const auto& r : rows) {
    out.push_back(absl::StrFormat("%d (%s)", r.count(),
                                  Pct(total > 0 ? static_cast<double>(r.count()) / total : 0)));
  }
  return out;
}

std::vector<std::pair<std::string, double>> Rows(
    const google::protobuf::RepeatedPtrField<v1::LabelCount>& rows) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& r : rows) out.emplace_back(r.label(), static_cast<double>(r.count()));
  return out;
}

// An uplift comparison's value for one arm: a share in percent, or a mean.
bool InPoints(const v1::UpliftComparison& c) {
  return c.kind() == v1::UpliftComparison::PROPORTION || c.outcome() == "weekly_check_in_rate" ||
         c.outcome() == "check_in_day_rate";
}

std::string ArmValue(const v1::UpliftComparison& c, bool control) {
  const double v = control ? c.control_value() : c.arm_value();
  const int64_t n = control ? c.control_n() : c.arm_n();
  return InPoints(c) ? absl::StrFormat("%.1f%% (n=%d)", v * 100, n)
                     : absl::StrFormat("%.2f (n=%d)", v, n);
}

// arm - control [95% CI], in percentage points for shares.
std::string Difference(const v1::UpliftComparison& c) {
  if (!c.estimated()) return "-";
  // Two calls, not one with a chosen format: the format must be a constant expression for
  // StrFormat's compile-time check (clang refuses a conditional one).
  if (InPoints(c)) {
    return absl::StrFormat("%+.1f pts [%+.1f, %+.1f]", c.difference() * 100, c.ci_low() * 100,
                           c.ci_high() * 100);
  }
  return absl::StrFormat("%+.2f [%+.2f, %+.2f]", c.difference(), c.ci_low(), c.ci_high());
}

std::string PValue(const v1::UpliftComparison& c) {
  if (!c.estimated()) return "-";
  return c.p_value() < 0.001 ? "<0.001" : absl::StrFormat("%.3f", c.p_value());
}

std::string Arms(const v1::ExperimentUplift& u) {
  std::vector<std::string> arms;
  for (const auto& a : u.arms()) arms.push_back(absl::StrFormat("%s %d", a.label(), a.count()));
  return absl::StrJoin(arms, ", ");
}

// A forest plot of the comparisons measured as shares: each difference in percentage points with
// its 95% interval, around a zero line.
std::string UpliftChart(const std::string& id, const v1::ExperimentUplift& u) {
  std::vector<const v1::UpliftComparison*> rows;
  double extent = 1;  // points
  for (const auto& c : u.comparisons()) {
    if (!InPoints(c) || !c.estimated()) continue;
    rows.push_back(&c);
    extent = std::max({extent, std::abs(c.ci_low()) * 100, std::abs(c.ci_high()) * 100});
  }
  constexpr int kRow = 26, kLeft = 260, kRight = 30, kTop = 10, kAxis = 24;
  const int plot_w = kWidth - kLeft - kRight;
  const int height = kTop + std::max<int>(1, static_cast<int>(rows.size())) * kRow + kAxis;
  auto x = [&](double points) { return kLeft + (points / extent + 1) / 2 * plot_w; };
  std::string svg = Open(id, height, absl::StrCat("Uplift of ", u.experiment()));
  const int bottom = kTop + static_cast<int>(rows.size()) * kRow;
  absl::StrAppendFormat(&svg, "<line class=\"axis\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n",
                        x(0), kTop, x(0), bottom);
  for (double t : {-extent, 0.0, extent}) {
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"tick\">"
                          "%+.1f pts</text>\n", x(t), bottom + 16, t);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const v1::UpliftComparison& c = *rows[i];
    const double y = kTop + static_cast<double>(i) * kRow + kRow / 2.0;
    absl::StrAppendFormat(
        &svg,
        "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"label\">%s (%s)</text>"
        "<line class=\"interval\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
        "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\"/>\n",
        kLeft - 8, y + 4, Esc(c.outcome()), Esc(c.arm()), x(c.ci_low() * 100), y,
        x(c.ci_high() * 100), y, x(c.difference() * 100), y);
  }
  return svg + "</svg>\n";
}

std::string UpliftSection(const v1::CohortStats& s) {
  if (s.uplift().empty()) return "";
  std::string html =
      "<section><h2>Uplift</h2>\n<p class=\"note\">Each experiment's arms compared on what "
      "happened after each patient was assigned (intent to treat: every assigned patient, "
      "reminded or not). Differences are arm minus control with their 95% confidence interval: "
      "Newcombe's hybrid score interval for shares, Welch's t for means; definitions in "
      "projections/uplift.h.</p>\n";
  for (int i = 0; i < s.uplift_size(); ++i) {
    const v1::ExperimentUplift& u = s.uplift(i);
    absl::StrAppend(&html, "<h3>", Esc(u.experiment()), "</h3>\n<p class=\"note\">",
                    Esc(Arms(u)), " patients assigned",
                    u.has_starts_at()
                        ? absl::StrCat(", from ", absl::FormatTime("%Y-%m-%d %H:%M UTC",
                                                                   FromProtoTime(u.starts_at()),
                                                                   absl::UTCTimeZone()))
                        : "",
                    u.program_id().empty() ? "" : absl::StrCat(", programme ", Esc(u.program_id())),
                    ".</p>\n", UpliftChart(absl::StrCat("chart-uplift-", i), u),
                    "<table><tr><th>outcome</th><th>control</th><th>arm</th>"
                    "<th>difference [95% CI]</th><th>p</th></tr>\n");
    for (const auto& c : u.comparisons()) {
      absl::StrAppend(&html, "<tr><td>", Esc(c.outcome()), "</td><td>", Esc(c.control()), " ",
                      ArmValue(c, true), "</td><td>", Esc(c.arm()), " ", ArmValue(c, false),
                      "</td><td>", Difference(c), "</td><td>", PValue(c), "</td></tr>\n");
    }
    html += "</table>\n";
  }
  return html + "</section>\n";
}

constexpr char kStyle[] = R"(
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 760px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
p.note { color: #555; font-size: 0.92em; }
svg.chart { display: block; margin: 0.5em 0; }
.mark { fill: #3b78b7; } .label, .value, .tick, .legend { font-size: 12px; fill: #333; }
.axis { stroke: #999; } .threshold { stroke: #c0392b; stroke-width: 2; stroke-dasharray: 5 3; }
.threshold-label { fill: #c0392b; font-size: 12px; }
.line { fill: none; stroke-width: 2; } .line.series-a { stroke: #3b78b7; }
.line.series-b { stroke: #e67e22; } circle.series-b, rect.series-b { fill: #e67e22; }
circle.series-a, rect.series-a { fill: #3b78b7; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; }
.interval { stroke: #3b78b7; stroke-width: 2; }
)";

// Runs in the browser only to mark each chart as laid out (used by the rendering test); the page
// reads and shows the same without it.
constexpr char kScript[] = R"(
window.addEventListener('load', function () {
  var n = 0;
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var marks = svg.querySelectorAll('.mark').length;
    if (box.width > 0 && box.height > 0 && marks > 0) { svg.setAttribute('data-drawn', marks); n++; }
  });
  document.body.setAttribute('data-charts-drawn', n);
});
)";

}  // namespace

absl::StatusOr<v1::CohortStats> ComputeCohortStats(const ReportOptions& options,
                                                   std::ostream& progress) {
  if (!options.remote.target.empty()) {
    if (!options.config_path.empty()) {
      return absl::InvalidArgumentError(
          "--config reads a state directory: with --grpc the instances view the patients with "
          "their own config");
    }
    if (!options.rules_path.empty()) {
      return absl::InvalidArgumentError(
          "--rules reads a state directory: with --grpc the instances compare the experiments "
          "of the rules they run");
    }
    return FetchCohortStats(options.remote, options.as_of, progress);
  }
  std::vector<projections::ArmSplit> experiments;
  if (!options.rules_path.empty()) {
    TEND_ASSIGN_OR_RETURN(RuleSet rules, RuleSet::Load(options.rules_path));
    experiments = ArmSplitsOf(rules);
  }
  TEND_ASSIGN_OR_RETURN(ViewReader reader, OpenViewReader(options.db_dir, options.config_path,
                                                          options.as_of, "tend-report-"));
  return tend::ComputeCohortStats(*reader.storage, reader.config, reader.as_of,
                                  std::move(experiments));
}

std::string RenderReport(const v1::CohortStats& s, const ReportOptions& options) {
  const std::string as_of =
      s.has_computed_at()
          ? absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::FromUnixSeconds(s.computed_at().seconds()),
                             absl::UTCTimeZone())
          : "-";
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", Esc(options.title),
      "</title>\n<style>", kStyle, "</style></head>\n<body>\n<h1>", Esc(options.title), "</h1>\n",
      absl::StrFormat("<p class=\"note\">%d patients, as of %s (each patient at %s). Definitions: "
                      "tend README, Projections; retention and cohort numbers: "
                      "projections/cohort.h.</p>\n",
                      s.patients(), as_of,
                      options.as_of ? "the report's as-of" : "its partition's clock"));

  absl::StrAppend(&html, "<section><h2>Acquisition by channel</h2>\n",
                  HBars("chart-acquisition", "Patients by acquisition channel",
                        Rows(s.acquisition_by_channel()),
                        Counts(s.acquisition_by_channel(), s.patients())),
                  "</section>\n");
  absl::StrAppend(&html,
                  "<section><h2>Activation funnel</h2>\n<p class=\"note\">Activation is the "
                  "patient talking: the configured number of patient messages.</p>\n",
                  HBars("chart-funnel", "Activation funnel", Rows(s.funnel()),
                        Counts(s.funnel(), s.patients())),
                  "</section>\n");
  absl::StrAppend(&html,
                  "<section><h2>Weekly check-in rate by cohort week</h2>\n<p class=\"note\">"
                  "Cohort: the ISO week a patient was first seen. Rate: share of weeks since "
                  "enrollment with a check-in, averaged over the cohort.</p>\n",
                  CohortWeeks(s), "</section>\n");
  absl::StrAppend(&html,
                  "<section><h2>Retention</h2>\n<p class=\"note\">Classic: active on day N after "
                  "the first-seen day; unbounded: on day N or later. Only patients first seen at "
                  "least N days ago count for day N.</p>\n",
                  Retention(s), "</section>\n");
  const std::vector<std::pair<std::string, double>> conversion = {
      {"first-order conversion", s.first_order_conversion()},
      {"repurchase (of buyers)", s.repurchase_rate()}};
  absl::StrAppend(
      &html, "<section><h2>Conversion and repurchase</h2>\n",
      HBars("chart-conversion", "Conversion and repurchase", conversion,
            {Pct(s.first_order_conversion()), Pct(s.repurchase_rate())}),
      absl::StrFormat("<p class=\"note\">Median time to the first purchase: %.1f days.</p>\n",
                      s.median_days_to_first_purchase()),
      "</section>\n");
  int64_t pdc_patients = 0;
  for (int64_t c : s.pdc().count()) pdc_patients += c;
  absl::StrAppend(
      &html, "<section><h2>Medication adherence (PDC)</h2>\n",
      absl::StrFormat("<p class=\"note\">Proportion of Days Covered (Pharmacy Quality Alliance), "
                      "%d patients with fills; %s at or above %.2f.</p>\n",
                      pdc_patients, Pct(s.pdc_adherent_share()), s.pdc_threshold()),
      Deciles("chart-pdc", "PDC distribution", s.pdc(), s.pdc_threshold(),
              absl::StrFormat("adherent %.2f", s.pdc_threshold())),
      "</section>\n");
  absl::StrAppend(&html,
                  "<section><h2>Churn risk</h2>\n<p class=\"note\">1 − P(alive) under BG/NBD "
                  "(Fader, Hardie &amp; Lee 2005), patients with activity.</p>\n",
                  Deciles("chart-churn-risk", "Churn-risk distribution", s.churn_risk(),
                          std::nullopt, ""),
                  "</section>\n");
  absl::StrAppend(&html, "<section><h2>Lifecycle stages</h2>\n",
                  HBars("chart-stages", "Patients by lifecycle stage", Rows(s.lifecycle_stages()),
                        Counts(s.lifecycle_stages(), s.patients())),
                  "</section>\n");
  html += UpliftSection(s);
  absl::StrAppend(&html, "<script>", kScript, "</script>\n</body></html>\n");
  return html;
}

std::string FormatUplift(const v1::ExperimentUplift& u) {
  std::string out = absl::StrCat(
      "experiment ", u.experiment(), ": ", Arms(u), " patients assigned",
      u.has_starts_at() ? absl::StrCat(", from ", absl::FormatTime(absl::RFC3339_sec, FromProtoTime(u.starts_at()), absl::UTCTimeZone())) : "",
      u.program_id().empty() ? "" : absl::StrCat(", programme ", u.program_id()), "\n");
  absl::StrAppendFormat(&out, "  %-22s %-26s %-26s %-30s %s\n", "outcome", "control", "arm",
                        "difference [95% CI]", "p");
  for (const auto& c : u.comparisons()) {
    absl::StrAppendFormat(&out, "  %-22s %-26s %-26s %-30s %s\n", c.outcome(),
                          absl::StrCat(c.control(), " ", ArmValue(c, true)),
                          absl::StrCat(c.arm(), " ", ArmValue(c, false)), Difference(c),
                          c.estimated() ? PValue(c) : c.note());
  }
  return out;
}

}  // namespace tend
