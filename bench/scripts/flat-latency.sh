#!/usr/bin/env bash
# Echo latency with 10, 1 000 and 10 000 idle connections open to sixstack (AF_XDP, lab
# link): the per-packet cost must not grow with the number of connections. Needs root.
# Usage: bench/scripts/flat-latency.sh [rounds=3] [secs=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; secs=${2:-5}
cargo build --release -q -p sixstack -p sixstack-bench
bin=target/release
$bin/sixstack lab down >/dev/null 2>&1 || true
# One queue, one shard pinned to core 1, the client on core 0: every run measures the same
# path, so only the number of idle connections changes.
$bin/sixstack lab up --queues 1 >/dev/null
pids=()
cleanup() { kill -INT "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; $bin/sixstack lab down >/dev/null; }
trap cleanup EXIT
cfg=$(mktemp)
cat >"$cfg" <<T
[interface]
name = "six0"
driver = "af_xdp"
netns = "sixapp"
cores = [1]
[addresses]
ipv4 = "10.77.0.2/24"
[tcp]
rx_buffer = 4096
tx_buffer = 4096
backlog = 512
[control]
socket = "/run/sixstack/flat-latency.sock"
[[service]]
kind = "echo"
port = 7
proto = "tcp"
T
RUST_LOG=warn $bin/sixstack run --config "$cfg" >/dev/null &
pids+=($!)
sleep 1.5
ulimit -n "$(ulimit -Hn)"
# Rounds of 10 000 connections: let the client reuse ports in TIME-WAIT.
ip netns exec sixpeer sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
for r in $(seq "$rounds"); do
  for idle in 10 1000 10000; do
    out=$(ip netns exec sixpeer taskset -c 0 $bin/sixstack-bench rr --target 10.77.0.2:7 --idle "$idle" --secs "$secs" --warmup 1 --json)
    echo "round=$r idle=$idle $out"
  done
done
