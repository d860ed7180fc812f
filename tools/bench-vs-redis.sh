#!/usr/bin/env bash
# Braid against a local redis-server, side by side in one run, with
# redis-benchmark: SET GET INCR SADD HSET LPUSH ZADD, -c 50, -P 1 and -P 16.
# Braid fsync=always / everysec against Redis appendfsync always / everysec /
# no persistence. Prints requests per second, p50/p99 latency and ratios.
#
#   tools/bench-vs-redis.sh            # default: 100000 requests per test
#   REQUESTS=20000 tools/bench-vs-redis.sh
#   ROUNDS=5 tools/bench-vs-redis.sh   # default 3
#
# Each round runs every configuration once, in turn, so that a burst of
# load from elsewhere hits all of them alike; each cell is the median over
# the rounds (requests/s, p50 and p99 each).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set,get,incr,sadd,hset,lpush,zadd}
PIPELINES=${PIPELINES:-"1 16"}
ROUNDS=${ROUNDS:-3}

# shellcheck source=tools/lib.sh
source tools/lib.sh
need redis-server redis-benchmark redis-cli
build_braid
setup_work


# Each sets PORT[name] and records its process (not run in $(…): a
# subshell's PIDS would not reach the cleanup).
declare -A PORT
start_redis() { # name, extra args…
  local name=$1; shift; local p; p=$(port); mkdir -p "$WORK/$name"
  redis-server --port "$p" --dir "$WORK/$name" --save '' "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!); wait_up "$p"; PORT[$name]=$p
}
start_braid() { # name, fsync
  local name=$1; local p; p=$(port)
  RUST_LOG=warn "$BIN" --port "$p" --data-dir "$WORK/$name" --fsync "$2" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!); wait_up "$p"; PORT[$name]=$p
}

start_redis redis_always --appendonly yes --appendfsync always
start_redis redis_everysec --appendonly yes --appendfsync everysec
start_redis redis_none --appendonly no
start_braid braid_always always
start_braid braid_everysec everysec

declare -A RPS P50 P99
for round in $(seq 1 "$ROUNDS"); do
for P in $PIPELINES; do
  for name in redis_always braid_always redis_everysec braid_everysec redis_none; do
    echo "round $round/$ROUNDS: $name -P $P…" >&2
    redis-cli -p "${PORT[$name]}" FLUSHALL >/dev/null
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
      test=${test//\"/}; [ "$test" = test ] && continue
      t=$(echo "$test" | awk '{print tolower($1)}')
      RPS[$name,$P,$t]+="${rps//\"/} "; P50[$name,$P,$t]+="${p50//\"/} "; P99[$name,$P,$t]+="${p99//\"/} "
    done < <(redis-benchmark -p "${PORT[$name]}" -t "$TESTS" -n "$REQUESTS" -c "$CLIENTS" -P "$P" -r 100000 --csv 2>/dev/null)
  done
done
done
# shellcheck disable=SC2086  # the values are one space-separated word list
median() { python3 -c "import sys, statistics; v=[float(x) for x in sys.argv[1:]]; print(f'{statistics.median(v):.2f}' if v else '?')" $1; }
for k in "${!RPS[@]}"; do
  RPS[$k]=$(median "${RPS[$k]}"); P50[$k]=$(median "${P50[$k]}"); P99[$k]=$(median "${P99[$k]}")
done

ratio() { python3 -c "import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }

echo
echo "requests/s (p50 / p99 ms), medians of $ROUNDS rounds, $REQUESTS requests, $CLIENTS clients, $(nproc) cores, $(date -u +%F)"
printf '| %-6s | %-2s | %-22s | %-22s | %-5s | %-22s | %-22s | %-5s | %-22s | %-5s |\n' \
  test P "redis always" "braid always" ratio "redis everysec" "braid everysec" ratio "redis no persistence" ratio
printf '|%s|\n' "--------|----|------------------------|------------------------|-------|------------------------|------------------------|-------|------------------------|-------"
for P in $PIPELINES; do
  for t in ${TESTS//,/ }; do
    cell() { echo "${RPS[$1,$P,$t]:-?} (${P50[$1,$P,$t]:-?}/${P99[$1,$P,$t]:-?})"; }
    printf '| %-6s | %-2s | %-22s | %-22s | %-5s | %-22s | %-22s | %-5s | %-22s | %-5s |\n' \
      "$t" "$P" "$(cell redis_always)" "$(cell braid_always)" \
      "$(ratio "${RPS[braid_always,$P,$t]:-0}" "${RPS[redis_always,$P,$t]:-0}")" \
      "$(cell redis_everysec)" "$(cell braid_everysec)" \
      "$(ratio "${RPS[braid_everysec,$P,$t]:-0}" "${RPS[redis_everysec,$P,$t]:-0}")" \
      "$(cell redis_none)" \
      "$(ratio "${RPS[braid_everysec,$P,$t]:-0}" "${RPS[redis_none,$P,$t]:-0}")"
  done
done
echo
echo "ratios: braid always / redis always; braid everysec / redis everysec; braid everysec / redis without persistence"
