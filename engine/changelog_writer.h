// Writes each commit's state changelog records (storage/changelog.h) to the changelog topic,
// after the commit's RocksDB write, on the committer's thread, and waits until the broker has
// them all: a commit whose records did not all arrive stops the engine, since a restore that
// missed a commit's records but applied a later one would hold a state no fold made
// (docs/design.md, "Planned, not built: state that follows its partition").
//
// Thread safety: Write() is called from one thread (the committer's).
#ifndef TEND_ENGINE_CHANGELOG_WRITER_H_
#define TEND_ENGINE_CHANGELOG_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kafka/kafka.h"
#include "kafka/props.h"
#include "storage/storage.h"

namespace tend {

class ChangelogWriter {
 public:
  // A producer of `topic` (partitioned like the events topic) with `props` (bootstrap.servers
  // and the operator's settings); idempotent, so retries neither duplicate nor reorder.
  static absl::StatusOr<std::unique_ptr<ChangelogWriter>> Create(const KafkaProps& props,
                                                                 std::string topic);
  // Produces the records of `batch`, written to `storage` already, and waits for every
  // acknowledgement. kUnavailable when one did not arrive.
  absl::Status Write(const Storage& storage, const StateBatch& batch);

  int64_t records() const { return records_; }

 private:
  ChangelogWriter(std::unique_ptr<Producer> producer, std::string topic)
      : producer_(std::move(producer)), topic_(std::move(topic)) {}
  std::unique_ptr<Producer> producer_;
  const std::string topic_;
  int64_t records_ = 0;
};

}  // namespace tend

#endif  // TEND_ENGINE_CHANGELOG_WRITER_H_
