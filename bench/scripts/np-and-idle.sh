#!/usr/bin/env bash
# Two measurements of the sharded appliance on the lab link (2 queues, 2 shards, emulated
# RSS via `sixstack up`), needs root:
#  1. idle CPU: the appliance's CPU time over IDLE seconds with no traffic;
#  2. NP ratio under load: TCP request/response from the peer for LOAD seconds, then the
#     per-shard busy time, NP time and NP ratio from `sixstack stats --json`.
# Usage: bench/scripts/np-and-idle.sh [idle_secs=10] [load_secs=10] [conns=50]
set -euo pipefail
cd "$(dirname "$0")/../.."
idle=${1:-10}; load=${2:-10}; conns=${3:-50}
cargo build --release -q -p sixstack -p sixstack-bench
bin=target/release
$bin/sixstack lab down >/dev/null 2>&1 || true
RUST_LOG=warn $bin/sixstack up >/dev/null 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null || true; wait $up 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S /run/sixstack/control.sock ] && break; sleep 0.1; done
sleep 1
pid=$(pgrep -P $up -x sixstack || echo $up)
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
t0=$(ticks); sleep "$idle"; t1=$(ticks)
echo "idle: $(( t1 - t0 )) ticks of CPU in ${idle}s over 2 shards = $(awk -v d=$(( t1 - t0 )) -v hz=$hz -v s=$idle 'BEGIN{printf "%.2f", 100*d/hz/s}')% of one core"
before=$($bin/sixstack stats --json)
ip netns exec sixpeer $bin/sixstack-bench rr --target 10.77.0.2:7 --conns "$conns" --threads 1 --secs "$load" --warmup 1 --json > /tmp/np-rr.json
after=$($bin/sixstack stats --json)
python3 - "$before" "$after" /tmp/np-rr.json <<'PY'
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rr = json.load(open(sys.argv[3]))
print(f"load: {rr['tps']:.0f} transactions/s over {rr['conns']} connections, p50 {rr['latency_us']['p50']} us, errors {rr['errors']}")
tb = tn = 0
for sb, sa in zip(b["shards"], a["shards"]):
    busy = sa["busy_ns"] - sb["busy_ns"]; np_ = sa["np_ns"] - sb["np_ns"]
    tb += busy; tn += np_
    print(f"shard {sa['shard']}: busy {busy/1e9:.3f} s, np {np_/1e6:.3f} ms, np ratio {100*np_/max(busy,1):.3f}%, "
          f"handoffs out/in {sa['handoffs_out']-sb['handoffs_out']}/{sa['handoffs_in']-sb['handoffs_in']}, "
          f"accepted {sa['conns_accepted']-sb['conns_accepted']}")
print(f"NP ratio under load: {100*tn/max(tb,1):.3f}% ({tn/1e6:.3f} ms serialized of {tb/1e9:.3f} s busy)")
PY
