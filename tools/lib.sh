# Shared by the benchmark scripts in tools/ (sourced, not run): checks the
# tools they need, builds braid-server once, and gives them a scratch dir
# whose processes are killed on exit.
#
#   source "$(dirname "$0")/lib.sh"; need redis-server redis-cli; setup_work

# Exits with an install hint unless every named command exists.
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y redis-server redis-tools" >&2; exit 1; }
  done
}

# Builds the release braid-server (a no-op when up to date) and sets BIN.
build_braid() {
  echo "building braid-server (release)…" >&2
  cargo build --release --bin braid-server >&2
  BIN="${CARGO_TARGET_DIR:-target}/release/braid-server"
}

# WORK: a scratch directory; PIDS: processes killed when the script exits.
setup_work() {
  WORK=$(mktemp -d)
  PIDS=()
  trap cleanup EXIT
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # A server started inside $(…) is not in PIDS (a subshell's copy); a
  # braid-server names its data dir under WORK.
  pkill -f -- "--data-dir $WORK/" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# Waits until a server answers PING on port $1 (30 s at most).
wait_up() { for _ in $(seq 1 300); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

# A free TCP (port) or UDP (udp_port) port on loopback.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
