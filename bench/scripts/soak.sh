#!/usr/bin/env bash
# Soak: a mixed workload with connection churn against one appliance on the lab link
# (AF_XDP) for MINUTES (default 10): TCP connect/request/close, TLS handshakes, proxied
# connections to a kernel backend, and FTP uploads and downloads checked byte for byte.
# Every 10 s the appliance's resident memory and open descriptors are sampled; after a
# warm-up of a fifth of the run both must stay flat (growth < 5 %) and no transfer may
# fail. Writes bench/results/<date>-soak.md and exits non-zero when a bound is broken.
# Needs root. Usage: bench/scripts/soak.sh [minutes=10]
# LOGIN_CACHE_S=N sets the FTP login cache (default: the appliance's 300 s), so that
# full password checks (an Argon2id work area of 19 MiB each) recur within a short run.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-10}
secs=$((minutes * 60))
cargo build --release -q -p sixstack -p sixstack-bench
bin=$PWD/target/release
work=$(mktemp -d /tmp/sixstack-soak.XXXXXX)
$bin/sixstack lab down >/dev/null 2>&1 || true
$bin/sixstack lab up --queues 2 >/dev/null
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  $bin/sixstack lab down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# TLS material, an FTP user with a home, a kernel backend for the proxy.
$bin/sixstack cert selfsigned --dir "$work/tls" --name 10.77.0.2 >/dev/null
mkdir -p "$work/home"
printf '[[user]]\nname = "soak"\nhome = "%s"\naccess = "read-write"\n' "$work/home" >"$work/users.toml"
echo "soak-password" | $bin/sixstack ftp passwd --users "$work/users.toml" soak >/dev/null
cat >"$work/soak.toml" <<T
[interface]
name = "six0"
driver = "af_xdp"
netns = "sixapp"
[addresses]
ipv4 = "10.77.0.2/24"
[tcp]
backlog = 256
[tls]
cert = "$work/tls/server.pem"
key = "$work/tls/server.key"
[control]
socket = "$work/control.sock"
[[service]]
kind = "echo"
port = 7
proto = "tcp"
[[service]]
kind = "tls-discard"
port = 7443
[ftp]
port = 2121
users = "$work/users.toml"
${LOGIN_CACHE_S:+login_cache_s = $LOGIN_CACHE_S}
[[proxy]]
name = "soak"
port = 8080
check_interval_ms = 0
[[proxy.backend]]
address = "10.77.0.1:9000"
T
ip netns exec sixpeer $bin/sixstack-bench kernel-echo --listen 10.77.0.1:9000 >/dev/null 2>&1 &
pids+=($!)
RUST_LOG=warn $bin/sixstack run --config "$work/soak.toml" >"$work/appliance.log" 2>&1 &
app=$!
pids+=($app)
sleep 2
ip netns exec sixpeer sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1

# The workload, in the background until the end.
end=$(($(date +%s) + secs))
head -c $((1 << 20)) /dev/urandom >"$work/up.bin"
fail="$work/failures"
: >"$fail"
(
  while [ "$(date +%s)" -lt "$end" ]; do
    ip netns exec sixpeer $bin/sixstack-bench crr --target 10.77.0.2:7 --secs 5 --warmup 0 --json >>"$work/crr.jsonl" 2>>"$fail" || echo "crr run failed" >>"$fail"
  done
) &
pids+=($!)
(
  while [ "$(date +%s)" -lt "$end" ]; do
    ip netns exec sixpeer $bin/sixstack-bench tls-hs --target 10.77.0.2:7443 --ca "$work/tls/ca.pem" --secs 5 --warmup 0 --json >>"$work/tls.jsonl" 2>>"$fail" || echo "tls run failed" >>"$fail"
  done
) &
pids+=($!)
(
  while [ "$(date +%s)" -lt "$end" ]; do
    ip netns exec sixpeer $bin/sixstack-bench crr --target 10.77.0.2:8080 --secs 5 --warmup 0 --json >>"$work/proxy.jsonl" 2>>"$fail" || echo "proxy run failed" >>"$fail"
  done
) &
pids+=($!)
(
  n=0
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    ip netns exec sixpeer curl -s --max-time 60 -T "$work/up.bin" "ftp://soak:soak-password@10.77.0.2:2121/f$((n % 4)).bin" || echo "ftp stor $n failed" >>"$fail"
    ip netns exec sixpeer curl -s --max-time 60 -o "$work/down.bin" "ftp://soak:soak-password@10.77.0.2:2121/f$((n % 4)).bin" || echo "ftp retr $n failed" >>"$fail"
    cmp -s "$work/up.bin" "$work/down.bin" || echo "ftp transfer $n not byte-exact" >>"$fail"
    echo "$n" >"$work/ftp.count"
  done
) &
pids+=($!)

# Samples: seconds, resident KiB, open descriptors.
samples="$work/samples"
: >"$samples"
t0=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  kill -0 "$app" 2>/dev/null || { echo "the appliance died" >>"$fail"; break; }
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$app/status")
  fds=$(ls "/proc/$app/fd" | wc -l)
  echo "$(($(date +%s) - t0)) $rss $fds" >>"$samples"
  sleep 10
done
wait "${pids[@]:2}" 2>/dev/null || true

warm=$((secs / 5))
# Growth: the median of the last third of the samples after warm-up against the median of
# the first third (a transfer's descriptors or buffers in flight at one sample are not growth).
read -r rss0 rss1 rss_growth fds0 fds1 fds_growth <<<"$(python3 -c 'import sys, statistics as st
w = int(sys.argv[2])
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r[0] >= w] or rows
k = max(1, len(rows) // 3)
out = []
for col in (1, 2):
    a = st.median(r[col] for r in rows[:k]); b = st.median(r[col] for r in rows[-k:])
    out += [int(a), int(b), "%.1f" % ((b - a) * 100 / a)]
print(*out)' "$samples" "$warm")"
# Transactions and errors the load generator counted, per workload.
tally() {
  python3 -c 'import json,sys
t=e=0
for l in open(sys.argv[1]):
    l=l.strip()
    if l.startswith("{"):
        j=json.loads(l); t+=j["transactions"]; e+=j["errors"]
print(t, e)' "$1" 2>/dev/null || echo "0 0"
}
read -r crr_t crr_e <<<"$(tally "$work/crr.jsonl")"
read -r tls_t tls_e <<<"$(tally "$work/tls.jsonl")"
read -r px_t px_e <<<"$(tally "$work/proxy.jsonl")"
failures=$(($(grep -c . "$fail" || true) + crr_e + tls_e + px_e))
ftp_rounds=$(cat "$work/ftp.count" 2>/dev/null || echo 0)
out=bench/results/$(date +%F)-soak.md
{
  echo "# Soak, $(date +%F), ${minutes} min, $(nproc) cores ($(uname -r))"
  echo
  echo "Command: \`bench/scripts/soak.sh $minutes\`. One appliance (AF_XDP, lab veth, 2 shards):"
  echo "TCP connect/request/close on echo, TLS handshakes on tls-discard, connect/request/close"
  echo "through a proxy listener to a kernel echo backend, and 1 MiB FTP STOR + RETR pairs"
  echo "compared byte for byte, all at once for the whole run."
  echo
  echo "| median of samples | first third after warm-up ($warm s) | last third | growth |"
  echo "|---|---|---|---|"
  echo "| resident memory (KiB) | $rss0 | $rss1 | ${rss_growth} % |"
  echo "| open descriptors | $fds0 | $fds1 | ${fds_growth} % |"
  echo
  echo "| workload | transactions | errors |"
  echo "|---|---|---|"
  echo "| TCP connect/request/close (echo) | $crr_t | $crr_e |"
  echo "| TLS handshakes (tls-discard) | $tls_t | $tls_e |"
  echo "| connect/request/close through the proxy | $px_t | $px_e |"
  echo "| FTP STOR + RETR of 1 MiB, compared | $ftp_rounds | $(grep -c ftp "$fail" || true) |"
  echo
  echo "Failed transfers or runs in all: $failures."
  if [ "$failures" -gt 0 ]; then echo; echo '```'; head -20 "$fail"; echo '```'; fi
  echo
  echo "Samples (s, KiB, fds): $(tr '\n' ';' <"$samples")"
} >"$out"
cat "$out"
ok=1
awk -v g="$rss_growth" 'BEGIN { exit !(g < 5) }' || { echo "soak: memory grew ${rss_growth} %"; ok=0; }
awk -v g="$fds_growth" 'BEGIN { exit !(g < 5) }' || { echo "soak: descriptors grew ${fds_growth} %"; ok=0; }
[ "$failures" -eq 0 ] || { echo "soak: $failures failures"; ok=0; }
[ "$ok" = 1 ]
