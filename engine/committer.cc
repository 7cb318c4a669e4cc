#include "engine/committer.h"

#include <algorithm>
#include <chrono>

#include "base/thread_name.h"
#include "storage/decided_values.h"
#include "storage/format.h"

namespace tend {

namespace sf = storage_format;

void* ArenaBlocks::Allocate(size_t size) {
  if (size == kBlockSize) {
    Pool& pool = Get();
    absl::MutexLock lock(&pool.mu);
    if (!pool.free.empty()) {
      void* block = pool.free.back();
      pool.free.pop_back();
      return block;
    }
  }
  return ::operator new(size);
}

void ArenaBlocks::Deallocate(void* block, size_t size) {
  if (size == kBlockSize) {
    Pool& pool = Get();
    absl::MutexLock lock(&pool.mu);
    if (pool.free.size() < kMaxKept) {
      pool.free.push_back(block);
      return;
    }
  }
  ::operator delete(block);
}

ArenaBlocks::Pool& ArenaBlocks::Get() {
  static Pool* pool = new Pool;  // never destroyed: arenas may outlive static destruction
  return *pool;
}

namespace {

// `message` serialized onto `arena`: the bytes protobuf would write, without its serializer
// (storage/decided_values.h).
template <typename Message, typename Measure, typename Encode>
absl::string_view EncodeOnto(const Message& message, google::protobuf::Arena* arena,
                             Measure measure, Encode encode) {
  const DecidedEncoding encoding = measure(message);
  char* bytes = google::protobuf::Arena::CreateArray<char>(arena, encoding.size);
  encode(message, encoding, bytes);
  return absl::string_view(bytes, encoding.size);
}

}  // namespace

void DecidedWrites::AddCommand(int32_t partition, const v1::ReminderCommand& command) {
  commands.push_back({partition, command.not_before().seconds(), Keep(command.command_id()),
                      EncodeOnto(command, &arena, MeasureCommand, EncodeCommand)});
}

void DecidedWrites::AddDecision(const v1::Decision& decision, int64_t offset, uint32_t index) {
  decisions.push_back({offset, index, decision.at().seconds(), Keep(decision.patient_id()),
                       EncodeOnto(decision, &arena, MeasureDecision, EncodeDecision)});
}

void DecidedWrites::AppendTo(StateBatch* batch, bool outbox) {
  if (outbox) {
    InKeyOrder(commands.size(), [&](size_t i, std::string* out) {
      const Command& c = commands[i];
      sf::AppendOutboxKey(c.partition, c.not_before_s, c.command_id, out);
    }, [&](size_t i) {
      const Command& c = commands[i];
      batch->PutCommand(c.partition, c.not_before_s, c.command_id, c.value);
    });
  }
  InKeyOrder(decisions.size(), [&](size_t i, std::string* out) {
    const Decision& d = decisions[i];
    sf::AppendDecisionKey(d.patient_id, d.at_s, d.offset, d.index, out);
  }, [&](size_t i) {
    const Decision& d = decisions[i];
    batch->PutDecision(d.patient_id, d.at_s, d.offset, d.index, d.value);
  });
  // A timer key's writes of one commit come down to the last one; a key armed and removed
  // within the commit (a timer that fell due, or moved, soon after it was armed) to none: a
  // timer is put only when armed, so a run that starts with a put starts from no key. (A fired
  // timer's key is removed by the firing and again by its memory's change: one delete.)
  SortByKey(timers.size(), [&](size_t i, std::string* out) {
    const TimerOp& t = timers[i];
    sf::AppendTimerKey(t.partition, t.due_s, t.patient_id, *t.rule_id, out);
  });
  for (size_t run = 0; run < order_.size();) {
    size_t end = run + 1;
    while (end < order_.size() && key(order_[end].index) == key(order_[run].index)) ++end;
    const TimerOp& first = timers[order_[run].index];
    const TimerOp& last = timers[order_[end - 1].index];
    if (last.put) {
      batch->PutTimer(last.partition, last.due_s, last.patient_id, *last.rule_id);
    } else if (!first.put) {
      batch->DeleteTimer(last.partition, last.due_s, last.patient_id, *last.rule_id);
    }
    run = end;
  }
}

void Committer::Loop() {
  SetThreadName("tend-commit");
  for (;;) {
    StateBatch* batch = nullptr;
    std::unique_ptr<DecidedWrites> decided;
    KafkaPartitionList offsets;
    int64_t records = 0;
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Committer* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->batch_ != nullptr || c->job_ != nullptr || c->stop_;
          },
          this));
      if (job_ != nullptr) {
        job = job_;  // job_ stays set while it runs: WaitJob waits for it
      } else {
        if (batch_ == nullptr) return;  // stopping, nothing in flight
        batch = batch_;
        decided = std::move(decided_);
        offsets = std::move(offsets_);
        records = records_;
      }
    }
    if (job) {
      job();
      absl::MutexLock lock(&mu_);
      job_ = nullptr;
      continue;
    }
    const auto start = std::chrono::steady_clock::now();  // durations: immune to clock steps
    if (decided) decided->AppendTo(batch, /*outbox=*/!replay_);
    // The changelog first: the directory never holds a commit the changelog lacks
    // (engine/changelog_writer.h).
    absl::Status s = changelog_ != nullptr ? changelog_->Write(*storage_, batch) : absl::OkStatus();
    if (s.ok()) s = storage_->Commit(batch, options_);
    const auto written = std::chrono::steady_clock::now();
    if (s.ok() && decided && replay_ && on_replay_command_) {
      v1::ReminderCommand command;
      for (const DecidedWrites::Command& c : decided->commands) {
        // Bytes this process serialized a moment ago: a failure would be a bug, not input.
        if (!command.ParseFromArray(c.value.data(), static_cast<int>(c.value.size()))) {
          s = absl::InternalError("a decided command could not be read back for the replay");
          break;
        }
        on_replay_command_(command);
      }
    }
    if (decided) decided->Clear();  // here too, not on the engine thread
    if (s.ok()) {
      commits_.fetch_add(1, std::memory_order_relaxed);
      commit_seconds_.Observe(std::chrono::duration<double>(written - start).count());
      commit_records_.Observe(static_cast<double>(records));
      commit_bytes_.Observe(static_cast<double>(batch->DataSize()));
      last_commit_ns_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
      // For lag monitoring only: the engine never reads group offsets back.
      if (consumer_ != nullptr && offsets && offsets->cnt > 0) {
        rd_kafka_commit(consumer_, offsets.get(), /*async=*/1);
      }
    }
    absl::MutexLock lock(&mu_);
    if (!s.ok() && status_.ok()) status_ = s;
    if (decided) spare_ = std::move(decided);
    batch_ = nullptr;
  }
}

}  // namespace tend
