#!/usr/bin/env bash
# The main job, from a fresh machine: set up, build, then record generated calls on a veth pair and
# show them.
#
#   [netns xdprec-demo-N]                      [this namespace]
#   xdprec replay --synth ──► veth xdpdN-b ═══ veth xdpdN-a ──► XDP probe ──► AF_XDP ──► xdprec capture
#                                                                                          │
#                                         xdprec index ◄── segments in $STORE ◄────────────┘
#                                         xdprec calls
#
# Everything stays inside the namespace and the veth pair this script creates (documentation
# addresses 198.51.100.0/24 and 203.0.113.0/24); both are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS="${CALLS:-20}"          # concurrent synthetic calls
SECONDS_TO_SEND="${DURATION:-8}"
STORE="${STORE:-$(mktemp -d /tmp/xdprec-demo-store.XXXXXX)}"

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: run as root (sudo): XDP, AF_XDP and network namespaces need it." >&2
  exit 1
fi

bash scripts/setup.sh
echo "== building (release)"
cargo build --release --quiet -p xdprec
XDPREC="$PWD/target/release/xdprec"

ns="xdprec-demo-$$"
a="xdpd$$a"; b="xdpd$$b"
a="${a:0:15}"; b="${b:0:15}"
capture_pid=""
cleanup() {
  [ -n "$capture_pid" ] && kill -INT "$capture_pid" 2>/dev/null && wait "$capture_pid" 2>/dev/null || true
  ip link del "$a" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

echo "== veth pair $a <-> $b (peer in netns $ns)"
ip netns add "$ns"
ip link add "$a" type veth peer name "$b"
ip link set "$b" netns "$ns"
ip link set "$a" up
ip -n "$ns" link set lo up
ip -n "$ns" link set "$b" up

echo "== capture on $a into $STORE"
caplog=$(mktemp /tmp/xdprec-demo-capture.XXXXXX.log)
"$XDPREC" capture --iface "$a" --store "$STORE" --recorder demo 2> >(tee "$caplog" >&2) &
capture_pid=$!
# Send only once the probe is attached and the capture thread runs (the capture first prepares
# its segments, a second or two): frames sent earlier would pass by unrecorded.
for _ in $(seq 300); do
    grep -q "capture thread(s) running" "$caplog" && break
    kill -0 "$capture_pid" 2>/dev/null || { echo "capture failed to start" >&2; exit 1; }
    sleep 0.1
done
grep -q "capture thread(s) running" "$caplog" || { echo "capture did not start within 30 s" >&2; exit 1; }
rm -f "$caplog"

echo "== replay: $CALLS concurrent synthetic calls for ${SECONDS_TO_SEND}s from $b"
ip netns exec "$ns" "$XDPREC" replay --iface "$b" --synth "$CALLS" --call-secs 4 --duration "$SECONDS_TO_SEND"

echo "== capture statistics"
"$XDPREC" stat --store "$STORE" --count 1 || true
sleep 1
kill -INT "$capture_pid"
wait "$capture_pid"
capture_pid=""

echo "== index"
"$XDPREC" index --store "$STORE"
echo "== calls"
"$XDPREC" calls --store "$STORE"
echo
echo "store kept at $STORE (xdprec calls --store $STORE --json; xdprec export --store $STORE --call-id ID --pcap out.pcap)"
