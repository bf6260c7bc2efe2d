#!/usr/bin/env bash
# Benchmark of the replay senders: achieved packets/s of `xdprec replay` with each sender and
# of `tcpreplay --topspeed`, on a veth pair inside a network namespace, with the same synthetic
# traffic (G.711 calls, mostly 214-byte frames). Prints a markdown table.
#
# Usage: scripts/bench-replay.sh [SECONDS_PER_RUN (10)] [RUNS (3)]
# Needs root, iproute2, ethtool, tcpreplay, bc; builds `xdprec` in release mode first (or uses
# $XDPREC_BIN). "sent" is the sender's own count; "received/sent" compares the peer's
# rx_packets with it (veth drops when the receiving side falls behind).
# Senders: live (BPF_PROG_RUN live frames, one call per distinct frame), live-r65536 (each frame
# repeated 65536 times per call: identical copies, a load figure only), live-ring (distinct
# frames: 65536 preloaded templates cycled by the program, 1 Mi packets per call), afxdp (AF_XDP
# TX socket, copy mode on veth), packet (AF_PACKET sendmmsg), tcpreplay --topspeed -K over a pcap
# of the same synthetic calls.
set -euo pipefail

SECS=${1:-10}
RUNS=${2:-3}
CALLS=2000
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${XDPREC_BIN:-}" ]; then
    cargo build --release -q -p xdprec --manifest-path "$ROOT/Cargo.toml"
fi
BIN=${XDPREC_BIN:-$TARGET/release/xdprec}

NS=xrbench$$
A=rbA$$
B=rbB$$
WORK=$(mktemp -d)
cleanup() {
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip link add "$A" type veth peer name "$B"
ip link set "$A" netns "$NS"
ip link set "$B" netns "$NS"
nsx() { ip netns exec "$NS" "$@"; }
for d in "$A" "$B"; do
    nsx sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1"
    nsx ip link set "$d" up
done
nsx ip link set lo up
# Live frames on veth need NAPI on the receiving end: GRO on (or an XDP program).
nsx ethtool -K "$B" gro on >/dev/null

rx() { nsx cat "/sys/class/net/$B/statistics/rx_packets"; }

# The same traffic for tcpreplay: 5 s of CALLS calls at their natural rate, looped.
"$BIN" replay --synth "$CALLS" --cps 100000 --call-secs 60 --duration 5 \
    --write-pcap "$WORK/synth.pcap" --seed 1 2>/dev/null
FRAMES=$(tcpdump -r "$WORK/synth.pcap" -nn 2>/dev/null | wc -l)

declare -A RESULTS RECEIVED
run_one() { # name, command...; prints "sent_pps delivered_percent"
    local name=$1
    shift
    local r0 r1 out pps n
    r0=$(rx)
    out=$(nsx "$@" 2>&1) || { echo "$name failed: $out" >&2; return 1; }
    r1=$(rx)
    case $name in
    tcpreplay)
        pps=$(echo "$out" | sed -n 's/.*Rated: [0-9.]* Bps, [0-9.]* Mbps, \([0-9.]*\) pps.*/\1/p' | head -1)
        n=$(echo "$out" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p' | head -1)
        ;;
    *)
        pps=$(echo "$out" | sed -n 's/.* = \([0-9]*\) pkt\/s.*/\1/p' | tail -1)
        n=$(echo "$out" | sed -n 's/.*: \([0-9]*\) packets, .*/\1/p' | tail -1)
        ;;
    esac
    echo "$pps $(echo "100 * ($r1 - $r0) / $n" | bc -l)"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for i in $(seq "$RUNS"); do
    for s in live live-r65536 live-ring afxdp packet; do
        case $s in
        live-r65536) opts=(--sender live --repeat 65536) ;;
        live-ring) opts=(--sender live-ring) ;;
        *) opts=(--sender "$s") ;;
        esac
        read -r p r < <(run_one "$s" "$BIN" replay --iface "$A" --synth "$CALLS" --cps 100000 \
            --call-secs 60 --topspeed --duration "$SECS" "${opts[@]}" --seed "$i")
        RESULTS[$s]+="$p "
        RECEIVED[$s]+="$r "
    done
    read -r p r < <(run_one tcpreplay tcpreplay -q -i "$A" --topspeed -K --loop 1000 \
        --duration "$SECS" "$WORK/synth.pcap")
    RESULTS[tcpreplay]+="$p "
    RECEIVED[tcpreplay]+="$r "
done

TCP=$(echo "${RESULTS[tcpreplay]}" | tr ' ' '\n' | grep . | median)
echo "## xdprec replay senders vs tcpreplay (veth pair in a netns, $SECS s runs x $RUNS)"
echo
echo "machine: $(nproc) CPUs, kernel $(uname -r); date $(date -u +%Y-%m-%dT%H:%MZ);" \
    "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "(plus uncommitted changes: $(git -C "$ROOT" status --porcelain | wc -l) files)"
echo "traffic: $CALLS synthetic G.711 calls ($FRAMES frames in the tcpreplay pcap)"
echo
echo "| sender | sent pps (runs) | median sent pps | median received/sent | vs tcpreplay |"
echo "|---|---|---|---|---|"
for s in live live-r65536 live-ring afxdp packet tcpreplay; do
    m=$(echo "${RESULTS[$s]}" | tr ' ' '\n' | grep . | median)
    rm_=$(echo "${RECEIVED[$s]}" | tr ' ' '\n' | grep . | median)
    runs=$(for x in ${RESULTS[$s]}; do printf '%.0f ' "$x"; done)
    printf '| %s | %s| %.0f | %.1f %% | %.2fx |\n' "$s" "$runs" "$m" "$rm_" "$(echo "$m / $TCP" | bc -l)"
done
