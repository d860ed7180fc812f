#!/usr/bin/env bash
# Server CPU per request, Braid `everysec` against Redis `appendfsync
# everysec`, side by side in one run: what each server process spent (user +
# system, from /proc/<pid>/stat) while redis-benchmark sent N requests at
# -P 16, -c 50, divided by N. Less noisy than requests/s on a shared machine,
# and it explains throughput: on a machine the client shares, requests/s is
# about cores / (server µs + client µs per request).
#
#   tools/bench-cpu.sh                 # N=1000000, TESTS=set,get,incr,sadd,hset,lpush,zadd
#   ROUNDS=3 N=500000 tools/bench-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
TESTS=${TESTS:-set,get,incr,sadd,hset,lpush,zadd}
ROUNDS=${ROUNDS:-2}
P=${P:-16}

# shellcheck source=tools/lib.sh
source tools/lib.sh
need redis-server redis-benchmark redis-cli
build_braid
setup_work

RP=$(port); mkdir -p "$WORK/redis"
redis-server --port "$RP" --dir "$WORK/redis" --save '' --appendonly yes --appendfsync everysec >"$WORK/redis.log" 2>&1 &
RPID=$!; PIDS+=("$RPID"); wait_up "$RP"
BP=$(port)
RUST_LOG=warn "$BIN" --port "$BP" --data-dir "$WORK/braid" --fsync everysec >"$WORK/braid.log" 2>&1 &
BPID=$!; PIDS+=("$BPID"); wait_up "$BP"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# One test against one server: prints "<requests/s> <server µs per request>".
measure() { # port pid test
  local t0 t1 out rps
  t0=$(ticks "$2")
  out=$(redis-benchmark -p "$1" -t "$3" -n "$N" -r 100000 -c 50 -P "$P" --csv 2>/dev/null | tail -1)
  t1=$(ticks "$2")
  rps=$(echo "$out" | cut -d, -f2 | tr -d '"')
  python3 -c "import sys; print(sys.argv[1], '%.3f' % ((int(sys.argv[3]) - int(sys.argv[2])) * 1e6 / int(sys.argv[4]) / int(sys.argv[5])))" "$rps" "$t0" "$t1" "$hz" "$N"
}

declare -A RUS BUS RRPS BRPS
for round in $(seq 1 "$ROUNDS"); do
  for t in ${TESTS//,/ }; do
    echo "round $round/$ROUNDS: $t…" >&2
    read -r rps us < <(measure "$RP" "$RPID" "$t"); RRPS[$t]+="$rps "; RUS[$t]+="$us "
    read -r rps us < <(measure "$BP" "$BPID" "$t"); BRPS[$t]+="$rps "; BUS[$t]+="$us "
  done
done
# shellcheck disable=SC2086  # the values are one space-separated word list
median() { python3 -c "import sys, statistics; v=[float(x) for x in sys.argv[1:]]; print(f'{statistics.median(v):.2f}' if v else '?')" $1; }

echo
echo "server CPU µs per request at -P $P, -c 50, medians of $ROUNDS rounds of $N requests, $(nproc) cores, $(date -u +%F)"
echo "| test | redis everysec µs | braid everysec µs | braid / redis | redis req/s | braid req/s |"
echo "|---|---|---|---|---|---|"
for t in ${TESTS//,/ }; do
  r=$(median "${RUS[$t]}"); b=$(median "${BUS[$t]}")
  ratio=$(python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.2f}')" "$r" "$b")
  echo "| $t | $r | $b | $ratio | $(median "${RRPS[$t]}") | $(median "${BRPS[$t]}") |"
done
