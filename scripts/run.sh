#!/usr/bin/env bash
# `make run`: the two mock upstreams (primary on 8081, secondary on 8082, which also serves
# the Anthropic Messages API as the `anthropic` upstream) and the gateway (8080) in the
# foreground, with deploy/mcp-server.yaml.
#
# All three stay in this script's process group, so Ctrl-C, or a SIGINT or SIGTERM that a
# supervisor sends to the group or to this script, stops all three: the trap forwards
# SIGTERM (each drains its in-flight requests) and waits for them. If one of them exits on
# its own, the others are stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-target/release}
PROXY_LISTEN=${PROXY_LISTEN:-127.0.0.1:8080}
MOCK_LISTEN=${MOCK_LISTEN:-127.0.0.1:8081}
SECONDARY_LISTEN=${SECONDARY_LISTEN:-127.0.0.1:8082}

pids=()
stop() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

"$BIN_DIR/mcp-mock-upstream" --listen "$MOCK_LISTEN" --instance primary &
pids+=($!)
"$BIN_DIR/mcp-mock-upstream" --listen "$SECONDARY_LISTEN" --instance secondary &
pids+=($!)
MCP__UPSTREAMS__PRIMARY__BASE_URL="http://$MOCK_LISTEN/v1" \
MCP__UPSTREAMS__SECONDARY__BASE_URL="http://$SECONDARY_LISTEN/v1" \
MCP__UPSTREAMS__ANTHROPIC__BASE_URL="http://$SECONDARY_LISTEN/v1" \
    "$BIN_DIR/mcp-proxy" --config deploy/mcp-server.yaml --listen "$PROXY_LISTEN" &
pids+=($!)

# Returns when any of them exits (or a trap fires); the EXIT trap stops the rest.
wait -n "${pids[@]}"
