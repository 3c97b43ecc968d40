#!/usr/bin/env bash
# First rough comparison: TCP echo round trips/s, sixstack (AF_XDP or TAP) vs the Linux
# kernel on the same lab link, same pinned cores, interleaved runs. Needs root.
# Usage: bench/scripts/rr-vs-kernel.sh [rounds=3] [secs=5] [conns=1] [driver=af-xdp]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; secs=${2:-5}; conns=${3:-1}; driver=${4:-af-xdp}
cargo build --release -q -p sixstack -p sixstack-bench
bin=target/release
tap=""; [ "$driver" = tap ] && tap="--tap"
$bin/sixstack lab down $tap >/dev/null 2>&1 || true
# One queue, one shard, one core: the same as the kernel server gets.
$bin/sixstack lab up $tap --queues 1 >/dev/null
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; $bin/sixstack lab down $tap >/dev/null; }
pids=()
trap cleanup EXIT
if [ "$driver" = tap ]; then
  # TAP lab: the peer is the kernel of sixtap itself; only the sixstack side is measured.
  ns=sixtap; stack=10.78.0.2; ifname=sixtap0; drv=tap; appns=sixtap
else
  ns=sixpeer; stack=10.77.0.2; kernel=10.77.0.3; ifname=six0; drv=af_xdp; appns=sixapp
  ip netns exec sixapp taskset -c 1 $bin/sixstack-bench kernel-echo --listen $kernel:7007 >/dev/null &
  pids+=($!)
fi
cfg=$(mktemp)
printf '[interface]\nname = "%s"\ndriver = "%s"\nnetns = "%s"\n[addresses]\nipv4 = "%s/24"\n[[service]]\nkind = "echo"\nport = 7\n' \
  "$ifname" "$drv" "$appns" "$stack" >"$cfg"
RUST_LOG=warn taskset -c 1 $bin/sixstack run --config "$cfg" &
pids+=($!)
sleep 1.5
run() { ip netns exec $ns taskset -c 0 $bin/sixstack-bench rr --target "$1" --conns "$conns" --secs "$secs" --warmup 1 --json; }
for r in $(seq "$rounds"); do
  echo "sixstack $(run $stack:7)"
  [ "$driver" = tap ] || echo "kernel   $(run $kernel:7007)"
done
