#!/usr/bin/env bash
# Validates the monitoring configuration with the real tools: the Prometheus config and the
# rule files it loads, the rule unit tests, and the Alertmanager config.
# Needs promtool (Prometheus 2.42 or later) and amtool (Alertmanager 0.25 or later) on PATH;
# it installs nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in promtool amtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check-monitoring: $tool not found on PATH" >&2
    exit 1
  fi
done

step() {
  echo
  echo "==> $*"
  "$@"
}

step promtool check config --lint-fatal prometheus/prometheus.yml
step promtool check rules --lint-fatal prometheus/rules/*.yml
step promtool test rules prometheus/tests/*.yml
step amtool check-config deploy/alertmanager/alertmanager.yml

echo
echo "check-monitoring: all checks passed"
