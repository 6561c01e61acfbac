#!/usr/bin/env bash
# Runs `verdict bench` the way BENCHMARKS.md was produced: a release build,
# a private throwaway redis-server (free port, temp dir, nothing persisted),
# `verdict serve` as its own process (as the README starts it), then the
# load generator against it. Everything it starts is stopped on exit.
#
#   scripts/bench.sh                          # every scenario, 64 in flight
#   scripts/bench.sh --scenario get-decision -z 20s
#   scripts/bench.sh --json > bench.json
#
# Extra arguments go to `verdict bench`. Prints, after the report, the CPU
# time the server and Redis used (on a 2-core machine the load generator
# competes with both, which is why the figures are read as ratios).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
cargo build --release --locked --quiet
bin=target/release/verdict
# VERDICT_SERVER_BIN=path serves with another build (the load generator
# stays this one), to compare two servers in alternating runs.
server_bin=${VERDICT_SERVER_BIN:-$bin}

free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port found" >&2; exit 1
}

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log" --daemonize no >/dev/null &
pids+=($!); redis_pid=$!

verdict_port=$(free_port)
RUST_LOG=${RUST_LOG:-info} "$server_bin" serve --listen "127.0.0.1:$verdict_port" \
  --redis-url "redis://127.0.0.1:$redis_port/" >"$dir/verdict.log" 2>&1 &
pids+=($!); server_pid=$!

# `verdict bench` itself waits until the server reports SERVING.
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$verdict_port") 2>/dev/null && break
  sleep 0.1
done

cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
"$bin" bench --target "127.0.0.1:$verdict_port" --redis-url "redis://127.0.0.1:$redis_port/" "$@"
echo "cpu used: verdict serve $(cpu "$server_pid")s, redis-server $(cpu "$redis_pid")s" >&2
