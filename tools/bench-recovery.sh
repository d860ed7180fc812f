#!/usr/bin/env bash
# Recovery, side by side in one run: start-up time of Braid (snapshot + log
# replay, and log replay alone) against redis-server loading an RDB and an
# AOF of the same data; and the time a new region takes to join a region
# holding the data, against a fresh Redis replica's full sync.
#
#   tools/bench-recovery.sh                    # KEYS="1000000 10000000"
#   KEYS=1000000 JOIN=0 tools/bench-recovery.sh
#
# Data: KEYS distinct string keys (key:<n>, 16-byte values) written with
# redis-cli --pipe. Start-up time is from starting the process until it
# answers PING with PONG and GET of the last key returns its value (Redis
# answers -LOADING while it loads; Braid listens once recovered). Braid's
# own "recovered" log line (elapsed_ms) is shown too. The Redis master runs
# with repl-diskless-sync-delay 0 (its default waits 5 s for more replicas).
# Timings depend on the disk and on what else runs: compare within one run.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-"1000000 10000000"}
JOIN=${JOIN:-1}             # 1: also time a new region / replica joining
JOIN_KEYS=${JOIN_KEYS:-1000000}

# shellcheck source=tools/lib.sh
source tools/lib.sh
need redis-server redis-cli python3
build_braid
setup_work

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# Waits until the server on port $1 answers GET $2 with a value; fails
# after $3 seconds.
wait_ready() {
  local deadline=$(( $(date +%s) + ${3:-1800} ))
  while :; do
    if [ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ] \
      && [ -n "$(redis-cli -p "$1" GET "$2" 2>/dev/null)" ]; then
      return 0
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { echo "server on $1 not ready after ${3:-1800} s" >&2; exit 1; }
    sleep 0.02
  done
}

stop() { # pid: SIGTERM and wait
  kill "$1" 2>/dev/null || true
  while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

gen_data() { # n, file: RESP SET commands for key:0 … key:n-1
  python3 - "$1" "$2" <<'EOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "wb", buffering=1 << 22) as f:
    for i in range(n):
        k = b"key:%d" % i
        v = b"%016d" % (i * 7919 % 10**16)
        f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, v))
EOF
}

load() { # port, file
  redis-cli -p "$1" --pipe <"$2" >"$WORK/pipe.log" 2>&1 || { cat "$WORK/pipe.log" >&2; exit 1; }
  grep -q "errors: 0" "$WORK/pipe.log" || { cat "$WORK/pipe.log" >&2; exit 1; }
}

start_braid() { # dir, port, extra args… ; echoes pid
  local dir=$1 p=$2; shift 2
  RUST_LOG=info NO_COLOR=1 "$BIN" --port "$p" --data-dir "$dir" --fsync everysec "$@" >>"$dir.log" 2>&1 &
  echo $!
}
start_redis() { # dir, port, extra args… ; echoes pid
  local dir=$1 p=$2; shift 2
  mkdir -p "$dir"
  redis-server --port "$p" --dir "$dir" --save '' "$@" >>"$dir.log" 2>&1 &
  echo $!
}
recovered_ms() { grep '"\?recovered' "$1" | tail -1 | sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p'; }

declare -a ROWS
for N in $KEYS; do
  echo "== $N keys: generating data…" >&2
  DATA="$WORK/data-$N.resp"
  gen_data "$N" "$DATA"
  LAST="key:$((N - 1))"

  # Braid, log replay only (no snapshot taken).
  P=$(port); D="$WORK/braid-log-$N"
  PID=$(start_braid "$D" "$P" --snapshot-every-ops 0 --snapshot-every-secs 0); PIDS+=("$PID")
  until [ "$(redis-cli -p "$P" PING 2>/dev/null)" = PONG ]; do sleep 0.05; done
  echo "loading braid (log only)…" >&2; load "$P" "$DATA"
  redis-cli -p "$P" BRAID.VV >/dev/null; stop "$PID"
  T0=$(now); PID=$(start_braid "$D" "$P" --snapshot-every-ops 0 --snapshot-every-secs 0); PIDS+=("$PID")
  wait_ready "$P" "$LAST"; T1=$(now)
  BRAID_LOG=$(secs "$T0" "$T1"); BRAID_LOG_SELF=$(recovered_ms "$D.log")
  DISK_LOG=$(du -sh "$D" | cut -f1)
  stop "$PID"

  # Braid, snapshot (taken after the load) + replay of what follows it.
  P=$(port); D="$WORK/braid-snap-$N"
  PID=$(start_braid "$D" "$P"); PIDS+=("$PID")
  until [ "$(redis-cli -p "$P" PING 2>/dev/null)" = PONG ]; do sleep 0.05; done
  echo "loading braid (snapshot)…" >&2; load "$P" "$DATA"
  redis-cli -p "$P" BRAID.SNAPSHOT >/dev/null; stop "$PID"
  T0=$(now); PID=$(start_braid "$D" "$P"); PIDS+=("$PID")
  wait_ready "$P" "$LAST"; T1=$(now)
  BRAID_SNAP=$(secs "$T0" "$T1"); BRAID_SNAP_SELF=$(recovered_ms "$D.log")
  DISK_SNAP=$(du -sh "$D" | cut -f1)
  stop "$PID"

  # Redis RDB.
  P=$(port); D="$WORK/redis-rdb-$N"
  PID=$(start_redis "$D" "$P" --appendonly no); PIDS+=("$PID")
  until [ "$(redis-cli -p "$P" PING 2>/dev/null)" = PONG ]; do sleep 0.05; done
  echo "loading redis (rdb)…" >&2; load "$P" "$DATA"
  redis-cli -p "$P" SAVE >/dev/null; stop "$PID"
  T0=$(now); PID=$(start_redis "$D" "$P" --appendonly no --dbfilename dump.rdb); PIDS+=("$PID")
  wait_ready "$P" "$LAST"; T1=$(now)
  REDIS_RDB=$(secs "$T0" "$T1"); DISK_RDB=$(du -sh "$D" | cut -f1)
  stop "$PID"

  # Redis AOF (commands as written, no RDB preamble).
  P=$(port); D="$WORK/redis-aof-$N"
  PID=$(start_redis "$D" "$P" --appendonly yes --appendfsync everysec --aof-use-rdb-preamble no); PIDS+=("$PID")
  until [ "$(redis-cli -p "$P" PING 2>/dev/null)" = PONG ]; do sleep 0.05; done
  echo "loading redis (aof)…" >&2; load "$P" "$DATA"
  stop "$PID"
  T0=$(now); PID=$(start_redis "$D" "$P" --appendonly yes --aof-use-rdb-preamble no); PIDS+=("$PID")
  wait_ready "$P" "$LAST"; T1=$(now)
  REDIS_AOF=$(secs "$T0" "$T1"); DISK_AOF=$(du -sh "$D" | cut -f1)
  stop "$PID"

  ROWS+=("| $N | $BRAID_SNAP (${BRAID_SNAP_SELF:-?} ms) | $BRAID_LOG (${BRAID_LOG_SELF:-?} ms) | $REDIS_RDB | $REDIS_AOF | $(python3 -c "print(f'{$BRAID_SNAP/$REDIS_RDB:.2f}')") | $(python3 -c "print(f'{$BRAID_LOG/$REDIS_AOF:.2f}')") | $(python3 -c "print(f'{$BRAID_SNAP/$REDIS_AOF:.2f}')") | $DISK_SNAP / $DISK_LOG / $DISK_RDB / $DISK_AOF |")
  rm -f "$DATA"; rm -rf "$WORK"/braid-*-"$N" "$WORK"/redis-*-"$N"
done

JOIN_ROW=""
if [ "$JOIN" = 1 ]; then
  N=$JOIN_KEYS
  echo "== join: $N keys…" >&2
  DATA="$WORK/data-join.resp"; gen_data "$N" "$DATA"; LAST="key:$((N - 1))"
  "$BIN" gen-certs --regions us,eu --out "$WORK/certs" >/dev/null
  PUS=$(port); PEU=$(port); UUS=$(udp_port); UEU=$(udp_port)
  DUS="$WORK/join-us"; DEU="$WORK/join-eu"
  PID_US=$(start_braid "$DUS" "$PUS" --region us --region-id 1 --replication-listen "127.0.0.1:$UUS" \
    --tls-dir "$WORK/certs" --peer "eu=2@127.0.0.1:$UEU"); PIDS+=("$PID_US")
  until [ "$(redis-cli -p "$PUS" PING 2>/dev/null)" = PONG ]; do sleep 0.05; done
  # A fresh region waits for a peer before taking writes (see README):
  # bounded by startup_peer_wait_ms when none answers.
  until redis-cli -p "$PUS" INFO replication | grep -q "writes:enabled"; do sleep 0.1; done
  echo "loading us…" >&2; load "$PUS" "$DATA"
  T0=$(now)
  PID_EU=$(start_braid "$DEU" "$PEU" --region eu --region-id 2 --replication-listen "127.0.0.1:$UEU" \
    --tls-dir "$WORK/certs" --peer "us=1@127.0.0.1:$UUS"); PIDS+=("$PID_EU")
  until [ "$(redis-cli -p "$PEU" PING 2>/dev/null)" = PONG ]; do sleep 0.02; done
  until [ "$(redis-cli -p "$PEU" BRAID.DIGEST 2>/dev/null)" = "$(redis-cli -p "$PUS" BRAID.DIGEST)" ] \
    && [ -n "$(redis-cli -p "$PEU" GET "$LAST")" ]; do sleep 0.02; done
  T1=$(now); BRAID_JOIN=$(secs "$T0" "$T1")
  stop "$PID_EU"; stop "$PID_US"

  PM=$(port); PR=$(port)
  PID_M=$(start_redis "$WORK/join-master" "$PM" --appendonly no --repl-diskless-sync-delay 0); PIDS+=("$PID_M")
  until [ "$(redis-cli -p "$PM" PING 2>/dev/null)" = PONG ]; do sleep 0.05; done
  echo "loading redis master…" >&2; load "$PM" "$DATA"
  T0=$(now)
  PID_R=$(start_redis "$WORK/join-replica" "$PR" --appendonly no --replicaof 127.0.0.1 "$PM"); PIDS+=("$PID_R")
  until redis-cli -p "$PR" INFO replication 2>/dev/null | grep -q "master_link_status:up" \
    && [ -n "$(redis-cli -p "$PR" GET "$LAST" 2>/dev/null)" ]; do sleep 0.02; done
  T1=$(now); REDIS_JOIN=$(secs "$T0" "$T1")
  stop "$PID_R"; stop "$PID_M"
  JOIN_ROW="| $N | $BRAID_JOIN | $REDIS_JOIN | $(python3 -c "print(f'{$BRAID_JOIN/$REDIS_JOIN:.2f}')") |"
fi

echo
echo "Start-up time in seconds (process start → GET of the last key answers), $(nproc) cores, $(date -u +%F)"
echo
echo "| keys | braid snapshot (own log) | braid log replay (own log) | redis RDB | redis AOF | snapshot / RDB | log / AOF | snapshot / AOF | disk: braid snap / braid log / rdb / aof |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do echo "$r"; done
if [ -n "$JOIN_ROW" ]; then
  echo
  echo "Joining: a new region (braid) / a fresh replica (redis) until it holds every key, seconds"
  echo
  echo "| keys | braid new region | redis new replica | ratio |"
  echo "|---|---|---|---|"
  echo "$JOIN_ROW"
fi
