#!/usr/bin/env bash
# Creates tend's topics on a real Kafka cluster with Kafka's own CLI (kafka-topics.sh).
#   deploy/create-topics.sh BOOTSTRAP [PARTITIONS] [REPLICATION]
# tend.events keeps everything forever: the log is the truth and replays rebuild from it.
# Timestamps stay CreateTime: tend writes recorded_at as the record timestamp, which `tend
# replay --from` and historical imports rely on. If producers outside your team write to the
# topic, consider --config message.timestamp.type=LogAppendTime: the engine's check that
# recorded_at is not ahead of the record's timestamp (engine config log.max_recorded_ahead_s)
# then holds against the broker's clock (docs/design.md, "Time you can trust"). With CreateTime,
# message.timestamp.after.max.ms (Kafka 3.6+; drop the line on older brokers, where the engine's
# own clock check still dead-letters such records) refuses records dated more than 5 minutes
# ahead of the broker, as the engine's log.max_recorded_ahead_s does.
set -euo pipefail
bootstrap=${1:?usage: $0 BOOTSTRAP [PARTITIONS] [REPLICATION]}
partitions=${2:-16}
replication=${3:-3}
kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists --topic tend.events \
  --partitions "$partitions" --replication-factor "$replication" \
  --config retention.ms=-1 --config retention.bytes=-1 --config min.insync.replicas=2 \
  --config compression.type=producer --config message.timestamp.after.max.ms=300000
kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists --topic tend.events.dlq \
  --partitions "$partitions" --replication-factor "$replication" \
  --config retention.ms=-1 --config min.insync.replicas=2
# The state changelog (tend engine --changelog): each partition's state as its commits left it,
# partitioned EXACTLY like tend.events (partition p holds partition p's state), compacted (only
# the newest record of each key is needed). delete.retention.ms must exceed the engine's 12 h
# limit for restoring a copy's tail (older copies are restored whole); min.compaction.lag.ms keeps
# the records of a commit an engine left unfinished until its partition's next owner has folded
# them again (docs/design.md, "State that follows its partition"). A patient record grows with
# history (about 12 bytes per event): raise max.message.bytes here and message.max.bytes of the
# engine's producer (--kafka) together if your patients' records approach 1 MB.
kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists --topic tend.state.changelog \
  --partitions "$partitions" --replication-factor "$replication" \
  --config cleanup.policy=compact --config min.insync.replicas=2 \
  --config delete.retention.ms=86400000 --config min.compaction.lag.ms=3600000 \
  --config compression.type=producer
# Who owns which partition (tend engine --advertise): one record per instance, compacted, and ONE
# partition so that every instance reads the claims in one order.
kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists --topic tend.membership \
  --partitions 1 --replication-factor "$replication" \
  --config cleanup.policy=compact --config min.insync.replicas=2
