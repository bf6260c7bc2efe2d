#!/usr/bin/env bash
# Capture benchmark (issue "Capture", item 9): the highest offered rate of 214-byte RTP frames
# (G.711, 20 ms) that `xdprec capture` records with zero loss on a veth pair, and in the same run
# the same figure for `tcpdump -w` on the same interface. Sender and receiver are pinned to
# different cores. 10 s per step by default. Prints a markdown table (and appends it to
# benches/RESULTS.md with --commit-results).
#
# Usage: sudo scripts/bench-capture.sh [--steps "250000 500000 ..."] [--secs 10] [--commit-results]
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="250000 500000 750000 1000000 1250000 1500000 1750000 2000000"
SECS=10
COMMIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --secs) SECS="$2"; shift 2 ;;
    --commit-results) COMMIT=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
bash scripts/setup.sh >/dev/null
cargo build --release --quiet -p xdprec
XDPREC="$PWD/target/release/xdprec"
NCPU=$(nproc)
SEND_CPU=0
RECV_CPU=$(( NCPU > 1 ? 1 : 0 ))

ns="xdprb$$"; a="xba$$"; b="xbb$$"
work=$(mktemp -d /tmp/xdprec-bench.XXXXXX)
cleanup() {
  pkill -f "$work" 2>/dev/null || true
  ip link del "$a" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip link add "$a" type veth peer name "$b"
ip link set "$b" netns "$ns"
ip link set "$a" up
ip -n "$ns" link set "$b" up
ip -n "$ns" link set lo up

rx_packets() { cat "/sys/class/net/$a/statistics/rx_packets"; }

# Sends SECS seconds at a rate from the namespace; prints the number of frames sent.
send() {
  local pps=$1
  ip netns exec "$ns" taskset -c "$SEND_CPU" "$XDPREC" replay --iface "$b" --synth 20000 \
    --pps "$pps" --duration "$SECS" --sender live --summary-json 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])'
}

# xdprec: records counted from the store after capture stops.
run_xdprec() {
  local pps=$1 store="$work/store-$1"
  taskset -c "$RECV_CPU" "$XDPREC" capture --iface "$a" --store "$store" --recorder bench \
    --cores "$RECV_CPU" --xdp-mode native >"$work/capture-$pps.log" 2>&1 &
  local pid=$!
  sleep 2
  local sent; sent=$(send "$pps")
  sleep 1
  kill -INT "$pid"; wait "$pid" || true
  local got; got=$("$XDPREC" capture --count-records --store "$store" 2>/dev/null || echo 0)
  local segs; segs=$(find "$store" -name '*.xseg*' | wc -l)
  echo "$sent $got $segs"
}

# tcpdump -w on the same interface, without the probe.
run_tcpdump() {
  local pps=$1 out="$work/td-$1.pcap"
  taskset -c "$RECV_CPU" tcpdump -i "$a" -w "$out" -B 262144 -n -q udp 2>"$work/td-$pps.log" &
  local pid=$!
  sleep 2
  local sent; sent=$(send "$pps")
  sleep 1
  kill -INT "$pid"; wait "$pid" || true
  local got; got=$(tcpdump -r "$out" -n -q 2>/dev/null | wc -l)
  echo "$sent $got"
}

echo "| offered pps | xdprec sent | xdprec recorded | loss | segments | tcpdump sent | tcpdump recorded | loss |"
echo "|---|---|---|---|---|---|---|---|"
best_x=0; best_t=0
for pps in $STEPS; do
  read -r xs xg segs < <(run_xdprec "$pps")
  read -r ts tg < <(run_tcpdump "$pps")
  xl=$(( xs - xg )); tl=$(( ts - tg ))
  echo "| $pps | $xs | $xg | $xl | $segs | $ts | $tg | $tl |"
  [ "$xl" -le 0 ] && [ "$xs" -gt 0 ] && best_x=$pps
  [ "$tl" -le 0 ] && [ "$ts" -gt 0 ] && best_t=$pps
done
ratio=$(python3 -c "print(f'{$best_x/$best_t:.2f}' if $best_t else 'inf')")
summary="Highest zero-loss rate: xdprec $best_x pps, tcpdump -w $best_t pps, ratio $ratio. Machine: $(nproc) vCPU, $(uname -r); $(date -u +%F); commit $(git rev-parse --short HEAD)."
echo
echo "$summary"
