#!/usr/bin/env bash
# Sets up a fresh Debian 12 host to run the tend engine against a real Kafka cluster:
# installs the build dependencies (Debian packages only), builds, installs /usr/local/bin/tend,
# creates the `tend` user and state directory, and installs the systemd unit (not started).
#   sudo deploy/setup-debian.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root (sudo $0)" >&2; exit 1; }
TEND_BUILD_TYPE=Release ./tools/dev build
install -m 0755 build/bin/tend /usr/local/bin/tend
id tend >/dev/null 2>&1 || useradd --system --home /var/lib/tend --shell /usr/sbin/nologin tend
install -d -o tend -g tend -m 0750 /var/lib/tend
install -d -m 0755 /etc/tend
[[ -f /etc/tend/engine.env ]] || install -m 0640 -g tend deploy/engine.env.example /etc/tend/engine.env
[[ -f /etc/tend/tokens ]] || install -m 0600 -o tend -g tend deploy/tokens.example /etc/tend/tokens
[[ -f /etc/tend/kafka.properties ]] ||
  install -m 0600 -o tend -g tend deploy/kafka.properties.example /etc/tend/kafka.properties
install -d -o tend -g tend -m 0750 /etc/tend/tls
[[ -f /etc/tend/engine.yaml ]] || install -m 0644 deploy/engine.yaml /etc/tend/engine.yaml
install -m 0644 deploy/tend-engine.service /etc/systemd/system/tend-engine.service
systemctl daemon-reload 2>/dev/null || true
echo "Installed. Edit /etc/tend/engine.env (TEND_BROKERS) and /etc/tend/kafka.properties (Kafka"
echo "credentials; or drop --kafka-config from engine.env for a plaintext cluster), put the engine's TLS"
echo "certificate and key in /etc/tend/tls (key chmod 600), replace the tokens in /etc/tend/tokens"
echo "(openssl rand -hex 32), create the topics (deploy/create-topics.sh),"
echo "then: systemctl enable --now tend-engine"
