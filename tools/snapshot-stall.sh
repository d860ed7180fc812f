#!/usr/bin/env bash
# p50/p99 command latency of braid-server while snapshots of a one-million-key
# state are written back to back, against the same with snapshots off, in
# one run (redis-benchmark, -c 50, -P 1, SET and GET).
#
#   tools/snapshot-stall.sh            # KEYS=1000000 REQUESTS=200000
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
REQUESTS=${REQUESTS:-200000}
for tool in redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y redis-tools" >&2; exit 1; }
done
cargo build --release --bin braid-server >&2
BIN="${CARGO_TARGET_DIR:-target}/release/braid-server"
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" --port "$PORT" --data-dir "$WORK/data" --fsync everysec \
  --snapshot-every-ops 0 --snapshot-every-secs 0 >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
echo "loading $KEYS keys…" >&2
seq 1 "$KEYS" | awk '{printf "*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$8\r\nvalue-%02d\r\n", length("key:"$1), $1, $1 % 100}' \
  | redis-cli -p "$PORT" --pipe >&2
echo "dbsize: $(redis-cli -p "$PORT" DBSIZE)" >&2

run() { # label
  redis-benchmark -p "$PORT" -t set,get -n "$REQUESTS" -c 50 -P 1 -r "$KEYS" --csv 2>/dev/null \
    | awk -F, -v label="$1" 'NR>1 {gsub(/"/,""); printf "| %-22s | %-4s | %10s | %6s | %6s | %6s |\n", label, $1, $2, $5, $7, $8}'
}
echo "| snapshots              | test |      req/s | p50 ms | p99 ms | max ms |"
echo "|------------------------|------|------------|--------|--------|--------|"
run "off"
redis-cli -p "$PORT" CONFIG SET snapshot-every-ops 1 >/dev/null
# Wait for the first snapshot to start, so every request below overlaps one.
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$PORT" INFO persistence | tr -d '\r' | awk -F: '/snapshot_in_progress/ {print $2}')" = 1 ] && break
  sleep 0.05
done
run "back to back (1M keys)"
redis-cli -p "$PORT" CONFIG SET snapshot-every-ops 0 >/dev/null
redis-cli -p "$PORT" INFO persistence | tr -d '\r' | grep -E 'snapshots_written|last_snapshot_duration_ms' >&2
