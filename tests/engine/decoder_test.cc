// engine/decoder.h: the checks of one record, and a batch checked on two threads giving exactly
// what the checks give on one, whichever thread claims each record.
#include "engine/decoder.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "storage/format.h"

namespace tend {
namespace {

// A record of every kind the checks tell apart, by `kind` (0-7), for patient `i`.
struct Built {
  std::string key, value;
  int64_t timestamp_ms = 0;
};

Built BuildRecord(int kind, int i, absl::Time now) {
  v1::Event e;
  const int64_t at = absl::ToUnixSeconds(now) - 60;
  e.set_patient_id(absl::StrCat("p", i));
  e.set_event_id(absl::StrCat("e-", i));
  e.mutable_occurred_at()->set_seconds(at);
  e.mutable_recorded_at()->set_seconds(at);
  e.mutable_scan()->set_channel_id("pharmacy");
  Built b{e.patient_id(), "", at * 1000};
  switch (kind) {
    case 0:  // valid
      break;
    case 1:  // undecodable
      b.value = std::string("\xff\xff\xff\xff not an event", 18);
      return b;
    case 2:  // invalid: a patient_id outside the alphabet
      e.set_patient_id("a b");
      b.key = "a b";
      break;
    case 3:  // recorded_at an hour after the record's timestamp
      b.timestamp_ms -= 3600 * 1000;
      break;
    case 4:  // the record's timestamp (and recorded_at) a day ahead of this machine
      e.mutable_recorded_at()->set_seconds(at + 86400);
      e.mutable_occurred_at()->set_seconds(at + 86400);
      b.timestamp_ms += 86400 * 1000;
      break;
    case 5:  // keyed by another patient
      b.key = absl::StrCat("q", i);
      break;
    case 6:  // a clock tick of a trusted ticker
      e.clear_patient_id();
      e.clear_scan();
      e.clear_occurred_at();
      e.mutable_clock_tick()->set_ticker("tend-ticker-t1");
      b.key = "";
      break;
    case 7:  // before --from
      b.timestamp_ms -= 30 * 86400 * 1000LL;
      e.mutable_recorded_at()->set_seconds(at - 30 * 86400);
      e.mutable_occurred_at()->set_seconds(at - 30 * 86400);
      break;
    case 8:  // after --until
      b.timestamp_ms += 3 * 86400 * 1000LL;
      e.mutable_recorded_at()->set_seconds(at + 3 * 86400);
      e.mutable_occurred_at()->set_seconds(at + 3 * 86400);
      break;
  }
  b.value = e.SerializeAsString();
  return b;
}

std::vector<LogRecord> Records(const std::vector<Built>& built) {
  std::vector<LogRecord> records;
  for (size_t i = 0; i < built.size(); ++i) {
    LogRecord r;
    r.partition = static_cast<int32_t>(i % 3);
    r.offset = static_cast<int64_t>(i);
    r.key = built[i].key;
    r.value = built[i].value;
    r.timestamp_ms = built[i].timestamp_ms;
    records.push_back(r);
  }
  return records;
}

CheckOptions Options(absl::Time now) {
  CheckOptions o;
  o.start_at = now - absl::Hours(24 * 7);
  o.end_at = now + absl::Hours(24 * 2);  // after kind 4's day ahead
  return o;
}

CheckedRecord Check(const LogRecord& record, const CheckOptions& options, absl::Time now,
                    google::protobuf::Arena* arena) {
  CheckedRecord out;
  CheckRecord(record, options, now, arena, &out);
  return out;
}

// The same result: status, reason, tick, skip, state key, and the event byte for byte.
void RequireSame(const CheckedRecord& got, const CheckedRecord& want) {
  REQUIRE(got.status == want.status);
  REQUIRE(got.why == want.why);
  REQUIRE(got.tick == want.tick);
  REQUIRE(got.skipped == want.skipped);
  REQUIRE(got.past_end == want.past_end);
  REQUIRE(got.state_key == want.state_key);
  REQUIRE(got.key_hash == want.key_hash);
  REQUIRE((got.event == nullptr) == (want.event == nullptr));
  if (want.event != nullptr) {
    REQUIRE(got.event->SerializeAsString() == want.event->SerializeAsString());
  }
}

TEST_CASE("each check of a record gives its own reason") {
  const absl::Time now = absl::Now();
  google::protobuf::Arena arena;
  const CheckOptions options = Options(now);
  auto check = [&](int kind) {
    const std::vector<Built> built = {BuildRecord(kind, 7, now)};
    return Check(Records(built)[0], options, now, &arena);
  };
  CheckedRecord valid = check(0);
  REQUIRE(valid.status.ok());
  REQUIRE(valid.event != nullptr);
  REQUIRE(valid.event->patient_id() == "p7");
  REQUIRE_FALSE(valid.tick);
  // The cache's key, and its hash as the cache computes it.
  REQUIRE(valid.state_key == storage_format::StateKey(0, "p7"));
  REQUIRE(valid.key_hash == StateKeyHash{}(absl::string_view(valid.state_key)));
  REQUIRE(valid.key().key == valid.state_key);
  const std::vector<std::pair<int, DeadLetterReason>> bad = {
      {1, DeadLetterReason::kUndecodable}, {2, DeadLetterReason::kInvalid},
      {3, DeadLetterReason::kRecordedAt},  {4, DeadLetterReason::kTimestamp},
      {5, DeadLetterReason::kKeyMismatch}};
  for (const auto& [kind, why] : bad) {
    CAPTURE(kind);
    CheckedRecord c = check(kind);
    REQUIRE_FALSE(c.status.ok());
    REQUIRE(c.why == why);
    REQUIRE_FALSE(c.tick);
    REQUIRE_FALSE(c.skipped);
    REQUIRE(c.state_key.empty());  // nothing to look up
  }
  REQUIRE(check(1).event == nullptr);
  REQUIRE(check(5).status.message().find("differs from patient_id") != absl::string_view::npos);
  CheckedRecord tick = check(6);
  REQUIRE(tick.status.ok());
  REQUIRE(tick.tick);
  REQUIRE(tick.state_key.empty());
  CheckedRecord early = check(7);
  REQUIRE(early.skipped);
  REQUIRE_FALSE(early.past_end);
  REQUIRE(early.event == nullptr);
  // After --until: passed over undecoded, whatever else is wrong with it (a timestamp days
  // ahead of this machine: the live engine dead-lettered it, and it is not folded here either).
  CheckedRecord late = check(8);
  REQUIRE(late.past_end);
  REQUIRE(late.status.ok());
  REQUIRE_FALSE(late.skipped);
  REQUIRE(late.event == nullptr);
  REQUIRE(late.state_key.empty());
  REQUIRE_FALSE(valid.past_end);
  // A result reused for another record keeps nothing of the last one.
  CheckedRecord reused = check(0);
  CheckRecord(Records({BuildRecord(1, 8, now)})[0], options, now, &arena, &reused);
  REQUIRE(reused.event == nullptr);
  REQUIRE(reused.state_key.empty());
  REQUIRE(reused.why == DeadLetterReason::kUndecodable);
  CheckRecord(Records({BuildRecord(8, 8, now)})[0], options, now, &arena, &reused);
  REQUIRE(reused.past_end);
  CheckRecord(Records({BuildRecord(7, 8, now)})[0], options, now, &arena, &reused);
  REQUIRE(reused.skipped);
  REQUIRE_FALSE(reused.past_end);
  REQUIRE(reused.status.ok());
}

TEST_CASE("a batch checked ahead on the decoder's thread gives what the checks give inline") {
  const absl::Time now = absl::Now();
  const CheckOptions options = Options(now);
  BatchDecoder decoder(options);
  google::protobuf::Arena arena;
  std::mt19937 rng(20261203);
  // Sizes on both sides of kMinAhead and up to a consumer batch. The fold lags (it sleeps now
  // and then, and checks each record again inline to compare: the thread claims most records),
  // or races the thread (every expected result computed before the batch starts, so the two
  // claim as fast as they can).
  int64_t by_thread_when_lagging = 0;
  for (int round = 0; round < 300; ++round) {
    const size_t n = round % 5 == 0 ? 1 + rng() % BatchDecoder::kMinAhead : 1 + rng() % 4096;
    std::vector<Built> built;
    for (size_t i = 0; i < n; ++i) {
      built.push_back(BuildRecord(rng() % 4 == 0 ? static_cast<int>(rng() % 9) : 0,
                                  static_cast<int>(i), now));
    }
    const std::vector<LogRecord> batch = Records(built);
    const bool racing = round % 2 == 0;
    std::vector<CheckedRecord> want;
    if (racing) {
      for (const LogRecord& r : batch) want.push_back(Check(r, options, now, &arena));
    }
    const int64_t by_thread = decoder.checked_by_thread();
    decoder.Start(batch, now);
    {
      // Finished before the batch goes, even when a REQUIRE fails.
      absl::Cleanup finish = [&] { decoder.Finish(); };
      for (size_t i = 0; i < n; ++i) {
        if (!racing && i % 512 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        CAPTURE(round, n, i, racing);
        RequireSame(decoder.Get(i), racing ? want[i] : Check(batch[i], options, now, &arena));
      }
    }
    if (n < BatchDecoder::kMinAhead) {
      REQUIRE(decoder.checked_by_thread() == by_thread);  // a small batch stays on one thread
    } else if (!racing) {
      by_thread_when_lagging += decoder.checked_by_thread() - by_thread;
    }
  }
  // The thread did check records: the comparisons above are of its results, not only the
  // caller's.
  REQUIRE(by_thread_when_lagging > 10000);
}

TEST_CASE("the events of folded batches are freed: the arenas stay bounded over many batches") {
  // Each thread's arena is reset once a consumer batch's worth was parsed (the decoder's thread
  // resets its own). 200 batches of 4096 records parse about 200 MB of events; the two 8 MiB
  // initial blocks and a batch or two of events must be all that is held.
  const absl::Time now = absl::Now();
  const CheckOptions options = Options(now);
  BatchDecoder decoder(options);
  std::vector<Built> built;
  for (int i = 0; i < 4096; ++i) built.push_back(BuildRecord(0, i, now));
  const std::vector<LogRecord> batch = Records(built);
  uint64_t most = 0;
  for (int round = 0; round < 200; ++round) {
    decoder.Start(batch, now);
    {
      absl::Cleanup finish = [&] { decoder.Finish(); };
      for (size_t i = 0; i < batch.size(); ++i) {
        if (i % 1024 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
        REQUIRE(decoder.Get(i).status.ok());
      }
    }
    most = std::max(most, decoder.arena_bytes());
  }
  CAPTURE(most, decoder.checked_by_thread());
  REQUIRE(decoder.checked_by_thread() > 100000);  // the thread's arena was used
  REQUIRE(most < (40u << 20));
  // Small batches, checked on the caller's thread only: its arena is reset too (8,000 batches of
  // 31 records parse about 80 MB).
  const std::vector<LogRecord> small(batch.begin(), batch.begin() + BatchDecoder::kMinAhead - 1);
  const int64_t by_thread = decoder.checked_by_thread();
  for (int round = 0; round < 8000; ++round) {
    decoder.Start(small, now);
    {
      absl::Cleanup finish = [&] { decoder.Finish(); };
      for (size_t i = 0; i < small.size(); ++i) REQUIRE(decoder.Get(i).status.ok());
    }
    most = std::max(most, decoder.arena_bytes());
  }
  CAPTURE(most);
  REQUIRE(decoder.checked_by_thread() == by_thread);
  REQUIRE(most < (40u << 20));
}

TEST_CASE("a fold that passes records over still gets the later ones, in any order") {
  // The engine takes no result for a record of a partition it no longer owns; a later record's
  // result must come all the same, whether or not the thread has reached it.
  const absl::Time now = absl::Now();
  const CheckOptions options = Options(now);
  BatchDecoder decoder(options);
  google::protobuf::Arena arena;
  for (const size_t n : {size_t{5}, size_t{40}, size_t{3000}}) {
    std::vector<Built> built;
    for (size_t i = 0; i < n; ++i) {
      built.push_back(BuildRecord(static_cast<int>(i % 9), static_cast<int>(i), now));
    }
    const std::vector<LogRecord> batch = Records(built);
    decoder.Start(batch, now);
    {
      absl::Cleanup finish = [&] { decoder.Finish(); };
      RequireSame(decoder.Get(n - 1), Check(batch[n - 1], options, now, &arena));
      for (size_t i = 0; i + 1 < n; i += 3) {
        RequireSame(decoder.Get(i), Check(batch[i], options, now, &arena));
      }
    }
    // And a batch of which nothing is taken is finished without waiting for anything.
    decoder.Start(batch, now);
    decoder.Finish();
  }
}

TEST_CASE("a batch left early leaves nothing of it in the next") {
  // The engine stops folding a batch at a fatal error; the decoder's thread may be checking its
  // records still. Finish waits for it: nothing of the old batch may land in the next one's
  // results (or on the arena once it is reset).
  const absl::Time now = absl::Now();
  const CheckOptions options = Options(now);
  BatchDecoder decoder(options);
  google::protobuf::Arena arena;
  std::vector<Built> first, second;
  for (int i = 0; i < 4000; ++i) {
    first.push_back(BuildRecord(i % 9, i, now));
    second.push_back(BuildRecord((i + 3) % 9, 100000 + i, now));
  }
  const std::vector<LogRecord> a = Records(first), b = Records(second);
  for (int round = 0; round < 40; ++round) {
    decoder.Start(a, now);
    (void)decoder.Get(0);
    if (round % 2 == 1) std::this_thread::sleep_for(std::chrono::microseconds(200));
    decoder.Finish();
    decoder.Start(b, now);
    absl::Cleanup finish = [&] { decoder.Finish(); };
    for (size_t i = 0; i < b.size(); ++i) {
      CAPTURE(round, i);
      RequireSame(decoder.Get(i), Check(b[i], options, now, &arena));
    }
  }
}

TEST_CASE("the decoder's thread is named for operators' tools (top -H, perf)") {
  BatchDecoder decoder(Options(absl::Now()));
  // Its thread names itself as it starts: look a few times.
  bool found = false;
  for (int attempt = 0; attempt < 200 && !found; ++attempt) {
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      found = found || name == "tend-decode";
    }
    if (!found) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(found);
}

}  // namespace
}  // namespace tend
