// tend bench --burst: the morning burst. A daily schedule rule (deploy/rules/default.yaml's
// daily-checkin: 09:00 local) holds one timer per patient, all due within minutes of each other;
// when the partition clocks pass 09:00, the whole population's timers fall due at once. The
// population's first events are folded first (untimed); then a clock tick per partition moves
// every clock past the due time, and the bench measures the time until every decision is
// committed, and decisions per second, folded from memory in REPLAY mode.
#include <sys/resource.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "base/temp_dir.h"
#include "base/time.h"
#include "bench/bench.h"
#include "bench/cpu.h"
#include "bench/memory_log.h"
#include "engine/engine.h"
#include "kafka/ticker.h"
#include "storage/storage.h"

namespace tend {
namespace {

constexpr char kRule[] = R"(
rules:
  - id: daily-checkin
    version: 1
    trigger: {schedule: {at: "09:00"}}
    when: {compare: {field: patient.adherence.checked_in_today, op: EQ, value: "false"}}
    action: {reminder: {template_id: daily-checkin, channel: CHAT}}
    policy: {category: CARE, priority: 10, cooldown: 20h, ttl: 6h}
)";

}  // namespace

absl::Status RunBurstBench(const BurstBenchOptions& options, std::ostream& out) {
  TEND_ASSIGN_OR_RETURN(RuleSet parsed, RuleSet::Parse(kRule, "burst"));
  const auto rules = std::make_shared<const RuleSet>(std::move(parsed));
  // Every patient scans in on 2026-03-01 between 08:00 and 12:00 UTC (16:00-20:00 in the
  // default zone, Asia/Shanghai): their 09:00 timers are due 2026-03-02T01:00Z. Then one tick
  // per partition at 01:30Z.
  const absl::Time day0 = absl::FromUnixSeconds(1772352000);  // 2026-03-01T08:00:00Z
  MemoryLog log;
  for (int i = 0; i < options.patients; ++i) {
    v1::Event e;
    e.set_patient_id(absl::StrFormat("p%08d", i));
    e.set_event_id(absl::StrCat("scan-", i));
    const absl::Time at = day0 + absl::Seconds(static_cast<int64_t>(i) * 14400 / options.patients);
    *e.mutable_occurred_at() = ToProtoTime(at);
    *e.mutable_recorded_at() = ToProtoTime(at);
    e.mutable_scan()->set_channel_id("pharmacy");
    e.mutable_scan()->set_staff_id("s1");
    MemoryLog::Record r;
    r.partition = static_cast<int32_t>(i % options.partitions);
    r.key = e.patient_id();
    r.value = e.SerializeAsString();
    r.timestamp_ms = absl::ToUnixMillis(at);
    log.records.push_back(std::move(r));
  }
  const size_t events = log.records.size();
  const absl::Time tick_at = day0 + absl::Hours(17) + absl::Minutes(30);
  for (int p = 0; p < options.partitions; ++p) {
    MemoryLog::Record r;
    r.partition = p;
    r.value = MakeClockTick("tend-ticker-bench", tick_at).SerializeAsString();
    r.timestamp_ms = absl::ToUnixMillis(tick_at);
    log.records.push_back(std::move(r));
  }
  TEND_ASSIGN_OR_RETURN(ScopedTempDir dir, ScopedTempDir::Create("tend-bench-burst-"));
  TEND_ASSIGN_OR_RETURN(auto storage, Storage::Open(dir.path()));
  EngineOptions engine_options;
  engine_options.mode = EngineOptions::Mode::kReplay;
  engine_options.rules = rules;
  std::atomic<bool> stop{false};
  // The population's first events: every patient's 09:00 timer armed.
  {
    std::cerr << "folding the first event of " << options.patients << " patients..." << std::endl;
    MemoryLog first;
    first.records.assign(log.records.begin(), log.records.begin() + events);
    TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
    MemorySource source(&first);
    TEND_RETURN_IF_ERROR(engine->RunFrom(&source, stop));
  }
  // The burst: a fresh engine (timers from storage, as after a restart), the ticks.
  std::cerr << "moving every clock past 09:00..." << std::endl;
  TEND_ASSIGN_OR_RETURN(auto engine, Engine::Create(engine_options, storage.get()));
  MemorySource source(&log);  // resumes after the events: only the ticks are new
  const double cpu0 = ProcessCpuSeconds();
  const absl::Time start = absl::Now();
  TEND_RETURN_IF_ERROR(engine->RunFrom(&source, stop));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_seconds = ProcessCpuSeconds() - cpu0;
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  const EngineStats st = engine->stats();
  if (st.timers_fired < options.patients) {
    return absl::InternalError(absl::StrCat("only ", st.timers_fired, " of ", options.patients,
                                            " timers fired"));
  }
  out << absl::StrFormat(
             "{\"burst_patients\":%d,\"partitions\":%d,\"timers_fired\":%d,\"decisions\":%d,"
             "\"commands\":%d,\"commits\":%d,\"timer_loads\":%d,\"seconds_to_committed\":%.2f,"
             "\"decisions_per_s\":%.0f,\"cpu_us_per_timer\":%.2f,\"peak_rss_mb\":%.0f}",
             options.patients, options.partitions, st.timers_fired, st.decisions, st.commands,
             st.commits, st.timer_loads, seconds, st.decisions / seconds,
             cpu_seconds * 1e6 / static_cast<double>(st.timers_fired),
             after.ru_maxrss / 1024.0)
      << std::endl;
  return absl::OkStatus();
}

}  // namespace tend
