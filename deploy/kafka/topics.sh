#!/bin/bash
# Creates Pulse's topics on the compose cluster (idempotent). The inputs, the repartition
# topic and the changelog must share one partition count.
set -euo pipefail
bin=/opt/kafka/bin
create() {
    "$bin/kafka-topics.sh" --bootstrap-server kafka:9092 --create --if-not-exists \
        --topic "$1" --partitions "$PARTITIONS" --replication-factor 1 "${@:2}"
}
for t in clickstream purchases surveys pulse.repartition \
         pulse.milestones pulse.segments pulse.churn-risk pulse.dead-letter; do
    create "$t"
done
create pulse.profiles --config cleanup.policy=compact
