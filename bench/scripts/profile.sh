#!/usr/bin/env bash
# Where the server core's time goes for the workloads that miss their target: sixstack over
# AF_XDP (1 queue, 1 shard on core 1) on the veth lab, and the kernel's echo server on the
# same link and core, each under the same client (core 0). `perf record -C 1` samples the
# whole server core, so the kernel work done on the shard's behalf (copy-mode XDP, the TX
# kick's veth transmit, softirq) is counted with the shard's own. Needs root and perf.
# Writes bench/results/<date>-<host>-profiles.md.
# Usage: bench/scripts/profile.sh [secs=4]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-4}
cargo build --release -q -p sixstack -p sixstack-bench
bin=$PWD/target/release
out=bench/results/$(date +%F)-$(hostname)-profiles.md
work=$(mktemp -d)
cfg=$work/appliance.toml
cat > "$cfg" <<CFG
[interface]
name = "six0"
driver = "af_xdp"
netns = "sixapp"
cores = [1]

[addresses]
ipv4 = "10.77.0.2/24"

[tcp]
backlog = 512

[control]
socket = "$work/control.sock"

[[service]]
kind = "echo"
port = 7

[[service]]
kind = "discard"
port = 9
proto = "tcp"
rx_buffer = 131072
CFG
app=""; kern=""
cleanup() {
  [ -n "$app" ] && kill -TERM "$app" 2>/dev/null && wait "$app" 2>/dev/null
  [ -n "$kern" ] && kill -TERM "$kern" 2>/dev/null
  $bin/sixstack lab down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
$bin/sixstack lab down >/dev/null 2>&1 || true
$bin/sixstack lab up --queues 1 >/dev/null
RUST_LOG=warn $bin/sixstack run --config "$cfg" >/dev/null 2>&1 &
app=$!
ip netns exec sixapp $bin/sixstack-bench kernel-echo --listen 10.77.0.3:7 --discard 9 --pin 1 >/dev/null 2>&1 &
kern=$!
for _ in $(seq 100); do [ -S "$work/control.sock" ] && break; sleep 0.1; done
sleep 1

workloads=(
  "tcp_rr_1B_100conn|rr --size 1 --conns 100|7"
  "tcp_connect_request_close|crr|7"
  "udp_rr_64B|udp-rr --size 64|7"
  "tcp_bulk_1stream|bulk|9"
)
{
  echo "# Server-core profiles: sixstack-xdp and the kernel"
  echo
  echo "$(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores."
  echo "Command: \`bench/scripts/profile.sh $secs\` (perf record -C 1 -g at 999 Hz while the"
  echo "client on core 0 runs the workload for $secs s). Self time, symbols of at least 1.5%."
} > "$out"
for spec in "${workloads[@]}"; do
  IFS='|' read -r name args port <<< "$spec"
  for server in sixstack-xdp kernel; do
    target=10.77.0.2; [ $server = kernel ] && target=10.77.0.3
    ip netns exec sixpeer taskset -c 0 $bin/sixstack-bench $args --target $target:$port \
      --secs $((secs + 1)) --warmup 0.5 --json > "$work/client.json" &
    client=$!
    sleep 0.7
    perf record -q -C 1 -g -F 999 -o "$work/perf.data" -- sleep "$secs" >/dev/null 2>&1
    wait $client
    tps=$(python3 -c "import json;print(round(json.load(open('$work/client.json'))['tps']))")
    {
      echo
      echo "## $name, $server ($tps/s)"
      echo
      echo '```'
      perf report -i "$work/perf.data" --no-children --sort dso,symbol --percent-limit 1.5 \
        --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
      echo '```'
    } >> "$out"
    echo "$name $server: $tps/s" >&2
  done
done
echo "profiles: $out"
