#!/usr/bin/env bash
# Runs the in-process criterion benchmarks and prints a compact table: name,
# time per iteration, throughput, and time per element. By default the CRDT
# core (benches/crdt.rs); BENCHES="crdt wire oplog" adds RESP parsing and
# replication segments (benches/wire.rs) and the op log (benches/oplog.rs).
#
#   tools/bench-crdt.sh                 # the CRDT core (a few minutes)
#   BENCHES="crdt wire oplog" tools/bench-crdt.sh
#   tools/bench-crdt.sh apply/          # only benchmarks matching a filter
#   tools/bench-crdt.sh --parse FILE    # summarize an existing criterion log
#
# The full criterion output is kept in $BENCH_LOG (default
# target/bench-crdt.log); HTML reports are under target/criterion/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == "--parse" ]]; then
    log="${2:?usage: $0 --parse FILE}"
else
    log="${BENCH_LOG:-target/bench-crdt.log}"
    mkdir -p "$(dirname "$log")"
    : >"$log"
    for b in ${BENCHES:-crdt}; do
        cargo bench --bench "$b" -- "$@" 2>&1 | tee -a "$log"
    done
    echo
fi

# criterion prints, per benchmark:
#   name                    time:   [low estimate high]
#                           thrpt:  [low estimate high]   (one line per unit)
# with the name on a line of its own when longer than 23 characters, and,
# when a previous run exists, "change:" lines whose values are percentages.
sed -e 's/\x1b\[[0-9;]*m//g' -e 's/µs/us/g' "$log" | awk '
function est(line,    s, f) {
    # "[1.0 ms 1.1 ms 1.2 ms]" -> "1.1 ms" (the point estimate)
    s = line
    sub(/^[^[]*\[/, "", s)
    sub(/\].*$/, "", s)
    split(s, f, " ")
    return f[3] " " f[4]
}
function per_elem(t,    f, v, u, m) {
    # "2.75 Melem/s" -> time per element
    split(t, f, " ")
    v = f[1] + 0
    u = f[2]
    if (u !~ /elem\/s$/ || v <= 0) return ""
    m = (u ~ /^G/) ? 1e9 : (u ~ /^M/) ? 1e6 : (u ~ /^K/) ? 1e3 : 1
    ns = 1e9 / (v * m)
    if (ns >= 1e6) return sprintf("%.2f ms", ns / 1e6)
    if (ns >= 1e3) return sprintf("%.2f us", ns / 1e3)
    return sprintf("%.1f ns", ns)
}
/^Benchmarking / { next }
/^[A-Za-z0-9_]+\/[^ ]+/ {
    name = $1
    if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
/time:/ && /\[/ && !/%/ && name != "" && !(name in tm) { tm[name] = est($0); next }
/thrpt:/ && /\[/ && !/%/ && name != "" {
    t = est($0)
    if (t ~ /elem\/s$/) { el[name] = t; pe[name] = per_elem(t) }
    else if (!(name in by)) by[name] = t
    next
}
/^[^ ]/ && !/^[A-Za-z0-9_]+\/[^ ]+/ { name = "" }
END {
    if (n == 0) { print "no benchmark results found" > "/dev/stderr"; exit 1 }
    fmt = "%-44s %12s %16s %12s %14s\n"
    printf fmt, "benchmark", "time", "elements/s", "per element", "bytes/s"
    for (i = 1; i <= n; i++) {
        k = order[i]
        printf fmt, k, tm[k], el[k], pe[k], by[k]
    }
}'
