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
#
#   VERDICT_SERVER_BIN=path   serve with another build (compare two builds)
#   VERDICT_REPLICAS=N        start N replicas on the one Redis (default 1);
#                             watch-fanout spreads its streams over all
#   VERDICT_PIN=1             pin the servers and Redis to CPU 0 and the load
#                             generator to CPU 1 (taskset), so the client's
#                             work does not share the server's core
#
# Every server's pid is passed as --server-pid (watch-fanout reports RSS).
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

server_cpu=() client_cpu=()
if [[ ${VERDICT_PIN:-0} == 1 ]]; then
  command -v taskset >/dev/null || { echo "VERDICT_PIN=1 needs taskset (util-linux)" >&2; exit 1; }
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
  taskset -pc 0 "$redis_pid" >/dev/null
fi

replicas=${VERDICT_REPLICAS:-1}
[[ $replicas =~ ^[1-9]$ ]] || { echo "VERDICT_REPLICAS must be 1 to 9" >&2; exit 1; }
ports=() server_pids=()
for i in $(seq 1 "$replicas"); do
  port=$(free_port)
  RUST_LOG=${RUST_LOG:-info} "${server_cpu[@]}" "$server_bin" serve --listen "127.0.0.1:$port" \
    --redis-url "redis://127.0.0.1:$redis_port/" --max-watchers 50000 >"$dir/verdict-$i.log" 2>&1 &
  pids+=($!); server_pids+=($!); ports+=("$port")
done

# `verdict bench` itself waits until the first server reports SERVING.
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

extra=()
for port in "${ports[@]:1}"; do extra+=(--replica "127.0.0.1:$port"); done
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
"${client_cpu[@]}" "$bin" bench --target "127.0.0.1:${ports[0]}" --redis-url "redis://127.0.0.1:$redis_port/" \
  --server-pid "$(IFS=,; echo "${server_pids[*]}")" "${extra[@]}" "$@"
for pid in "${server_pids[@]}"; do
  echo "cpu used: verdict serve (pid $pid) $(cpu "$pid")s" >&2
done
echo "cpu used: redis-server $(cpu "$redis_pid")s" >&2
