// tend bench --history: does a decision cost the same on a patient's day 1000 as on day 1
// (docs/design.md, decision 10)? The same number of records, simulated as cohorts with histories
// of different lengths (fewer patients, longer lives), folded from memory in REPLAY mode, with
// the rules given. The measure is process CPU time per unit of work (a record folded or a timer
// fired), which the shared machine's noise moves far less than wall time; the baseline is the
// first length given (the shortest, by default). The folds run round by round, each length in
// turn, and `vs_first` is the median over rounds of the length's CPU per unit against the
// baseline's in the same round (the machine's speed drifts over minutes, so lengths are compared
// within a round).
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "bench/bench.h"
#include "bench/cpu.h"
#include "bench/memory_log.h"
#include "engine/engine.h"
#include "storage/storage.h"

namespace tend {
namespace {

struct Fold {
  double cpu_seconds = 0;
  double wall_seconds = 0;
  EngineStats stats;
};

absl::StatusOr<Fold> FoldOnce(const MemoryLog& log, const HistoryBenchOptions& bench) {
  TEND_ASSIGN_OR_RETURN(ScopedTempDir dir, ScopedTempDir::Create("tend-bench-history-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(dir.path()));
  EngineOptions options;
  options.mode = EngineOptions::Mode::kReplay;
  options.rules = bench.rules;
  if (bench.commit_max_records > 0) options.commit_max_records = bench.commit_max_records;
  TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(options, storage.get()));
  MemorySource source(&log);
  std::atomic<bool> stop{false};
  Fold fold;
  const double cpu0 = ProcessCpuSeconds();
  const absl::Time wall0 = absl::Now();
  TEND_RETURN_IF_ERROR(engine->RunFrom(&source, stop));
  fold.cpu_seconds = ProcessCpuSeconds() - cpu0;
  fold.wall_seconds = absl::ToDoubleSeconds(absl::Now() - wall0);
  fold.stats = engine->stats();
  if (fold.stats.records != static_cast<int64_t>(log.records.size())) {
    return absl::DataLossError(absl::StrCat("the engine folded ", fold.stats.records,
                                            " records of ", log.records.size()));
  }
  return fold;
}

}  // namespace

absl::Status RunHistoryBench(const HistoryBenchOptions& options, std::ostream& out) {
  if (options.days.empty()) return absl::InvalidArgumentError("no history lengths to compare");
  struct Length {
    int days = 0;
    int patients = 0;
    MemoryLog log;
    std::vector<Fold> folds;  // by round
  };
  std::vector<Length> lengths;
  for (const int days : options.days) {
    // Records per patient over `days`, from a small pilot cohort of the same shape.
    CohortOptions cohort;
    cohort.days = days;
    cohort.seed = options.seed;
    cohort.initial_share = 1.0;  // every patient lives the whole period
    cohort.patients = 500;
    TEND_ASSIGN_OR_RETURN(const MemoryLog pilot, SimulateToMemory(cohort, options.partitions));
    const double per_patient =
        std::max(1.0, static_cast<double>(pilot.records.size()) / cohort.patients);
    cohort.patients = std::max(1, static_cast<int>(std::lround(options.events / per_patient)));
    std::cerr << days << "-day histories: simulating " << cohort.patients << " patients..."
              << std::endl;
    Length length;
    length.days = days;
    length.patients = cohort.patients;
    TEND_ASSIGN_OR_RETURN(length.log, SimulateToMemory(cohort, options.partitions));
    lengths.push_back(std::move(length));
  }
  // Round by round, every length in turn: the folds compared are minutes apart at most, so a
  // change in the machine's speed moves the lengths of a round together.
  for (int round = 0; round < options.repeat; ++round) {
    for (Length& length : lengths) {
      std::cerr << length.days << "-day histories: folding " << length.log.records.size()
                << " records, run " << round + 1 << "/" << options.repeat << "..." << std::endl;
      TEND_ASSIGN_OR_RETURN(Fold fold, FoldOnce(length.log, options));
      length.folds.push_back(fold);
    }
  }
  auto us_per_unit = [](const Fold& f) {
    const int64_t units = f.stats.records + f.stats.timers_fired;
    return units > 0 ? f.cpu_seconds * 1e6 / static_cast<double>(units) : 0.0;
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  for (const Length& length : lengths) {
    std::vector<double> us, vs_first;
    for (int round = 0; round < options.repeat; ++round) {
      us.push_back(us_per_unit(length.folds[round]));
      vs_first.push_back(us.back() / us_per_unit(lengths.front().folds[round]));
    }
    const double median_us = median(us);
    const Fold& fold = *std::find_if(length.folds.begin(), length.folds.end(),
                                     [&](const Fold& f) { return us_per_unit(f) == median_us; });
    out << absl::StrFormat(
               "{\"history_days\":%d,\"patients\":%d,\"records\":%d,\"timers_fired\":%d,"
               "\"decisions\":%d,\"commands\":%d,\"commits\":%d,\"repeat\":%d,\"cpu_us_per_unit\":%.2f,"
               "\"cpu_us_per_unit_min\":%.2f,\"cpu_us_per_unit_max\":%.2f,\"records_per_s\":%.0f,"
               "\"vs_first\":%.3f}",
               length.days, length.patients, fold.stats.records, fold.stats.timers_fired,
               fold.stats.decisions, fold.stats.commands, fold.stats.commits, options.repeat,
               median_us, *std::min_element(us.begin(), us.end()),
               *std::max_element(us.begin(), us.end()),
               fold.stats.records / fold.wall_seconds, median(vs_first))
        << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace tend
