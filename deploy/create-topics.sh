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
