#!/usr/bin/env bash
# Capture benchmark: the highest rate of distinct 214-byte RTP frames (G.711, 20 ms) that
# `xdprec capture` records with zero loss on a veth pair, and in the same run the same figure
# for `tcpdump -w` on the same interface (no probe attached). Prints a markdown report.
#
# Usage: sudo scripts/bench-capture.sh [--steps "250000 500000 ..."] [--secs 10] [--runs 1]
#          [--capture-args "--spare-segments 3 --ring-size 131072 ..."] [--no-rt] [--only xdprec|tcpdump]
#          [--napi sender|capture|own] [--napi-spin] [--queues K] [--tcpdump-buffers "0 131072"]
#          [--out-dir DIR (store and tcpdump's file; default /tmp)] [--spool ram|disk]
#
# Setup: a network namespace with a veth pair A (sender) -- B (capture), made here and removed
# by a trap. The sender is `xdprec replay --sender live-ring` (BPF_PROG_RUN live frames of
# 65536 distinct templates, paced in the kernel) on core 0; the capture (or tcpdump) runs on
# core 1. On veth the receive side's kernel work (veth NAPI, the probe, the copy into the
# AF_XDP ring; or skb allocation and the packet tap for tcpdump) runs on the SENDER's core:
# "one capture core" here means the user-space recorder's core (--napi sender, the default).
# With --napi capture, B's NAPI runs in a kernel thread (threaded NAPI) pinned to the
# recorder's core, as a NIC queue whose interrupt is on the capture core: each recorder then
# pays its whole receive path on its one core. With --napi own, each NAPI thread gets a core of
# its own (a NIC whose queue interrupts have their own cores; needs 3 cores a queue).
# --napi-spin (with own): an idle-class (SCHED_IDLE) busy loop on each NAPI core, so that the
# virtual core does not halt between bursts; waking a halted vCPU takes long enough for veth's
# 256-frame ring to overflow (a NIC's ring holds thousands). It yields to NAPI at once.
# --queues K (multi-queue scaling, many-core machines): B gets K receive queues, K senders run
# on cores 0..K-1 (veth picks the peer's queue by the sending core, so sender i feeds queue
# i), each at 1/K of the step's rate; xdprec captures all K queues on cores K..2K-1 (its
# housekeeping threads on the same cores), NAPI threads (own) on 2K..3K-1. Both the sender and the
# recorder run at nice -10 (unless --no-rt) so that other work on this shared machine
# preempts them less; tcpdump gets the same. xdprec pins its capture thread (--cores 1) and,
# by default, its housekeeping threads (sealer, spare maker) to the same core
# (--housekeeping-cores 1; they run 10 nice levels below the capture thread): on two vCPUs
# the only other core is the traffic source's, which has no time to spare at these rates.
# Otherwise the capture's own defaults (2 spare segments, a ring of 65536 2 KiB frames = 44 ms
# at 1.5 Mpps; rounds before 7 in benches/results/capture.md used --spare-segments 3
# --ring-size 131072 --frame-size 2048, which segment recycling made unnecessary), with the
# UMEM on huge pages: the script reserves them (vm.nr_hugepages, enough for a 256 MiB UMEM a
# queue) and gives the old value back at the end. tcpdump runs once per buffer in
# --tcpdump-buffers (KiB, default "0 131072": 0 is tcpdump's own default of 2 MiB, as operators
# run `tcpdump -w`; 131072 is 128 MiB, as much as xdprec's ring). The capture runs with --dedup-window-ms 0: the
# sender cycles through its templates (one pass is 44 ms at 1.5 Mpps; RTP sequence numbers move
# on in each pass, but the dedup fingerprint must not see old passes).
#
# --spool (default ram): the capture's --spool. With ram its active and spare segment files
# live on a tmpfs at STORE/spool (sealed segments still go to the disk, by O_DIRECT copies);
# the capture runs under `ip netns exec`, in a private mount namespace where it does not mount
# one itself, so the script mounts it (and unmounts it after each run). With disk they live
# beside the sealed segments and the kernel writes the reused files back every 30 s (round 8
# in benches/results/capture.md: what that costs).
#
# Per step and system: frames sent (the sender's count), frames recorded (xdprec: `written` of
# the capture's own summary; tcpdump: packets in its file, by capinfos, or tcpdump's own
# "packets captured" where capinfos is missing), and drops by cause:
# the sender veth's tx_dropped (its peer's 256-frame XDP ring), the probe's no_socket /
# redirect_failed / dropped, the AF_XDP socket's ring-full and fill-ring-empty counts, the
# writer's disk-full / write errors; for tcpdump its "dropped by kernel", B's rx_dropped and
# the softnet backlog drops. For xdprec also where its capture thread's time went (from `xdprec
# stat` once a second): the longest it was away from its ring, and over the send the time it
# waited for its core (other tasks on it), the hypervisor's steal of that core, and the most rx
# ring entries waiting; the log and per-second stats of a run that lost frames are kept (the
# log has the capture's "away from its ring" warnings).
# A step is zero-loss when recorded == sent in every run; a system's figure is
# the median sent rate of its highest step below its first step with loss.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

STEPS="250000 500000 750000 1000000 1250000 1500000 1750000 2000000 2500000"
SECS=10
RUNS=1
CAPTURE_ARGS=""
NAPI=sender
QUEUES=1
SPIN=0
TD_BUFS="0 131072"
RT=1
ONLY=""
OUTDIR=/tmp
SPOOL=ram
while [ $# -gt 0 ]; do
    case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --secs) SECS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --capture-args) CAPTURE_ARGS="$2"; shift 2 ;;
    --no-rt) RT=0; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    --napi) NAPI="$2"; shift 2 ;;
    --queues) QUEUES="$2"; shift 2 ;;
    --napi-spin) SPIN=1; shift ;;
    --tcpdump-buffers) TD_BUFS="$2"; shift 2 ;;
    --out-dir) OUTDIR="$2"; shift 2 ;;
    --spool) SPOOL="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
case "$NAPI" in sender | capture | own) ;; *) echo "--napi: sender, capture or own" >&2; exit 2 ;; esac
case "$SPOOL" in ram | disk) ;; *) echo "--spool: ram or disk" >&2; exit 2 ;; esac
case "$QUEUES" in '' | *[!0-9]* | 0) echo "--queues: a number >= 1" >&2; exit 2 ;; esac
# capinfos (wireshark) is optional: without it tcpdump's own "packets captured" is used.
for t in ip ethtool tcpdump taskset python3; do
    command -v "$t" >/dev/null || { echo "needs $t (scripts/setup.sh)" >&2; exit 1; }
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${XDPREC_BIN:-}" ]; then
    cargo build --release -q -p xdprec
fi
BIN=${XDPREC_BIN:-$TARGET/release/xdprec}
# Cores: senders 0..K-1, recorders K..2K-1, NAPI threads (--napi own) 2K..3K-1.
NCPU=$(nproc)
NEED=$((QUEUES * $([ "$NAPI" = own ] && echo 3 || echo 2)))
if [ "$NCPU" -lt "$NEED" ] && { [ "$QUEUES" -gt 1 ] || [ "$NAPI" = own ]; }; then
    echo "--queues $QUEUES --napi $NAPI needs $NEED cores; this machine has $NCPU" >&2
    exit 2
fi
SEND_CPUS=() RECV_CPUS=() NAPI_CPUS=()
for ((q = 0; q < QUEUES; q++)); do
    SEND_CPUS+=("$q")
    RECV_CPUS+=($(( NCPU > 1 ? QUEUES + q : 0 )))
    NAPI_CPUS+=($((2 * QUEUES + q)))
done
RECV_LIST=$(IFS=,; echo "${RECV_CPUS[*]}")
SEND_LIST=$(IFS=,; echo "${SEND_CPUS[*]}")
# nice, not SCHED_FIFO: the capture's sealer thread (which preallocates and maps the next
# segment) would run to completion ahead of the capture thread at the same FIFO priority.
if [ "$RT" = 1 ]; then PRIO=(nice -n -10); else PRIO=(); fi

NS=xcb$$
A=cbA$$
B=cbB$$
WORK=$(mktemp -d "$OUTDIR/xdprec-capbench.XXXXXX")
CAP_PID=""
SPIN_PIDS=()
# xdprec's defaults for this machine (see the header); --capture-args wins over them.
# (The capture refuses a flag given twice: each default goes in only when --capture-args
# does not give that flag; "--ring-size 0 --frame-size 0" there gets the capture's own sizes.)
DEFAULTS="--housekeeping-cores $RECV_LIST"
set -- $DEFAULTS
while [ $# -gt 0 ]; do
    case " $CAPTURE_ARGS " in *" $1 "*) ;; *) CAPTURE_ARGS="$1 $2 $CAPTURE_ARGS" ;; esac
    shift 2
done
HUGE0=$(cat /proc/sys/vm/nr_hugepages)
# 256 MiB UMEM a queue = 128 pages of 2 MiB; a few more for the senders' maps.
echo $((HUGE0 + 128 * QUEUES + 32)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
cleanup() {
    [ "${#SPIN_PIDS[@]}" -gt 0 ] && kill "${SPIN_PIDS[@]}" 2>/dev/null || true
    echo "$HUGE0" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    [ -n "$CAP_PID" ] && kill -9 "$CAP_PID" 2>/dev/null || true
    [ -n "${WORK:-}" ] && umount "$WORK/store/spool" 2>/dev/null || true
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that cleanup runs when the script is stopped (timeout)

ip netns add "$NS"
ip -n "$NS" link add "$A" numtxqueues "$QUEUES" numrxqueues "$QUEUES" type veth \
    peer name "$B" numtxqueues "$QUEUES" numrxqueues "$QUEUES"
nsx() { ip netns exec "$NS" "$@"; }
for d in "$A" "$B"; do
    nsx sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1"
    ip -n "$NS" link set "$d" up
done
ip -n "$NS" link set lo up
# Live frames reach B only through NAPI: an XDP program (xdprec) or GRO (tcpdump) on B.
nsx ethtool -K "$B" gro on >/dev/null

ctr() { nsx cat "/sys/class/net/$1/statistics/$2"; }

if [ "$SPIN" = 1 ]; then
    [ "$NAPI" = own ] || { echo "--napi-spin needs --napi own" >&2; exit 2; }
    for c in "${NAPI_CPUS[@]}"; do
        taskset -c "$c" chrt --idle 0 sh -c 'while :; do :; done' &
        SPIN_PIDS+=($!)
    done
fi

# --napi capture|own: B's NAPI in kernel threads (one a queue), the i-th pinned to recorder core
# i (capture) or NAPI core i (own). Call once B has NAPI (an XDP program or GRO on it).
napi_pin() {
    [ "$NAPI" = sender ] && return 0
    local cpus=("${RECV_CPUS[@]}")
    [ "$NAPI" = own ] && cpus=("${NAPI_CPUS[@]}")
    nsx sh -c "echo 1 > /sys/class/net/$B/threaded"
    local p pids napi_comm="napi/$B-"
    for _ in $(seq 50); do
        # comm is cut at 15 characters; kernel threads of this veth appear in queue order.
        mapfile -t pids < <(pgrep "^${napi_comm:0:15}" || true)
        if [ "${#pids[@]}" -ge "$QUEUES" ]; then
            for p in $(seq 0 $((QUEUES - 1))); do
                taskset -pc "${cpus[$p]}" "${pids[$p]}" >/dev/null
            done
            return 0
        fi
        sleep 0.1
    done
    echo "threaded NAPI: found ${#pids[@]} napi/$B threads, expected $QUEUES" >&2
    return 1
}
napi_off() {
    [ "$NAPI" = sender ] && return 0
    nsx sh -c "echo 0 > /sys/class/net/$B/threaded" 2>/dev/null || true
}
softnet_drops() {
    local s=0 _a d _r
    while read -r _a d _r; do s=$((s + 16#$d)); done </proc/net/softnet_stat
    echo "$s"
}

# send RATE SEED: one sender a queue, each at RATE/K with its own seed (distinct calls);
# prints "sent secs tx_dropped" (sum of packets, longest sender's seconds, A's tx_dropped).
send() {
    local rate=$1 seed=$2 q pids=() txd0 n=0 s=0 fail=0
    txd0=$(ctr "$A" tx_dropped)
    for q in "${!SEND_CPUS[@]}"; do
        nsx taskset -c "${SEND_CPUS[$q]}" "${PRIO[@]}" timeout $((SECS + 60)) "$BIN" replay \
            --iface "$A" --synth $((15000 / QUEUES)) --cps 1000000 --call-secs 60 \
            --sender live-ring --pps $((rate / QUEUES)) --duration "$SECS" \
            --seed $((seed * 100 + q)) >"$WORK/send$q.log" 2>&1 &
        pids+=($!)
    done
    for q in "${!pids[@]}"; do
        wait "${pids[$q]}" || { echo "replay $q failed: $(cat "$WORK/send$q.log")" >&2; fail=1; }
    done
    [ "$fail" = 0 ] || return 1
    local f sq ss
    for q in "${!SEND_CPUS[@]}"; do
        f="$WORK/send$q.log"
        sq=$(sed -n 's/.*sender live-ring: \([0-9]*\) packets.*/\1/p' "$f" | tail -1)
        ss=$(sed -n 's/.* bytes in \([0-9.]*\) s = .*/\1/p' "$f" | tail -1)
        n=$((n + ${sq:-0}))
        s=$(python3 -c "print(max($s, ${ss:-0}))")
    done
    echo "$n $s $(( $(ctr "$A" tx_dropped) - txd0 ))"
}

# run_xdprec RATE SEED: prints "sent secs written drops(ring_full fill_empty no_socket
# redirect_failed probe_dropped disk_full write_errors tx_dropped) segments rss_kb hwm_kb spare_misses
# seal_max_ms seals_in_place gap_ms run_delay_ms steal_ms preemptions ring_fill_max": the last
# five from `xdprec stat` once a second during the send: the longest time a capture thread was
# away from its ring, over the send the time it waited for its core, the hypervisor's steal of
# its core and its preemptions (summed over queues), and the most rx ring entries it found
# waiting (a ring that fills without a long gap: the thread was too slow for a while).
run_xdprec() {
    local rate=$1 seed=$2 store="$WORK/store"
    rm -rf "$store"
    if [ "$SPOOL" = ram ]; then
        mkdir -p "$store/spool"
        mount -t tmpfs -o size=$((QUEUES * 16 * 256))m tmpfs "$store/spool"
    fi
    # shellcheck disable=SC2086
    # Not through nsx: $! must be the recorder itself (ip netns exec and nice exec). Only the
    # capture thread is pinned (--cores); the control and sealer threads float.
    ip netns exec "$NS" "${PRIO[@]}" "$BIN" capture --iface "$B" --store "$store" \
        --recorder bench --cores "$RECV_LIST" --xdp-mode native --dedup-window-ms 0 \
        --spool "$SPOOL" $CAPTURE_ARGS >"$WORK/capture.log" 2>&1 &
    CAP_PID=$!
    for _ in $(seq 100); do
        grep -q "capture thread(s) running" "$WORK/capture.log" && break
        kill -0 "$CAP_PID" 2>/dev/null || { cat "$WORK/capture.log" >&2; return 1; }
        sleep 0.1
    done
    napi_pin
    sleep 0.5
    local sent secs txd stat_pid
    "$BIN" stat --store "$store" --json --interval 1 --count $((SECS + 30)) >"$WORK/stat-run.json" 2>/dev/null &
    stat_pid=$!
    read -r sent secs txd < <(send "$rate" "$seed")
    sleep 1
    kill "$stat_pid" 2>/dev/null || true
    wait "$stat_pid" 2>/dev/null || true
    "$BIN" stat --store "$store" --json --count 1 --interval 0.2 >"$WORK/stat.json"
    napi_off
    local rss hwm
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$CAP_PID/status")
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$CAP_PID/status")
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=""
    local segs
    segs=$(find "$store/segments" -name '*.xseg' | wc -l)
    local row
    row=$(python3 - "$WORK/stat.json" "$WORK/capture.log" "$sent" "$secs" "$txd" "$segs" "$rss" "$hwm" "$WORK/stat-run.json" <<'EOF'
import json, re, sys
stat, log, sent, secs, txd, segs, rss, hwm, during = sys.argv[1:]
gap, fill, first, last = 0, 0, {}, {}
for line in open(during):
    if line.startswith("{") and "max_loop_gap_ns" in line:
        r = json.loads(line)
        q = (r["iface"], r["queue"])
        gap = max(gap, r["max_loop_gap_ns"])
        fill = max(fill, r["ring_fill"])
        first.setdefault(q, r)
        last[q] = r
def delta(k):
    return sum(last[q][k] - first[q][k] for q in last)
row = {}
for line in open(stat):
    line = line.strip()
    if line.startswith("{"):
        row = json.loads(line)
p = row.get("probe", {})
m = re.search(r"written (\d+) .*ring full (\d+) fill empty (\d+) invalid (\d+) disk full (\d+) write errors (\d+)",
              open(log).read())
written, ring_full, fill_empty, _inv, disk_full, werr = (int(x) for x in m.groups()) if m else (0,) * 6
print(sent, secs, written, ring_full, fill_empty, p.get("no_socket", 0), p.get("redirect_failed", 0),
      p.get("dropped", 0), disk_full, werr, txd, segs, rss, hwm, row.get("spare_misses", 0),
      row.get("seal_max_ms", 0), row.get("seals_in_place", 0), gap // 10**6,
      delta("run_delay_ns") // 10**6, delta("steal_ns") // 10**6, delta("involuntary_switches"), fill)
EOF
)
    echo "$row"
    # A run that lost frames: keep the capture's log (start-up, warnings, summary) and its
    # per-second stats to look at.
    set -- $row
    if [ "${3:-0}" -lt "${1:-0}" ]; then
        cp "$WORK/capture.log" "$OUTDIR/xdprec-capbench-loss-$rate-run$seed.log"
        cp "$WORK/stat-run.json" "$OUTDIR/xdprec-capbench-loss-$rate-run$seed.stat.json"
        echo "xdprec lost frames at $rate pps (run $seed): log and per-second stats kept in $OUTDIR/xdprec-capbench-loss-$rate-run$seed.{log,stat.json}" >&2
    fi
    [ "$SPOOL" = ram ] && umount "$store/spool"
    rm -rf "$store"
}

# run_tcpdump RATE SEED BUF: prints "sent secs recorded kernel_dropped rx_dropped softnet
# tx_dropped". BUF: tcpdump's buffer (-B, KiB); 0: its default (2 MiB), as operators run it.
run_tcpdump() {
    local rate=$1 seed=$2 buf=$3 out="$WORK/td.pcap" bopt=()
    [ "$buf" = 0 ] || bopt=(-B "$buf")
    rm -f "$out"
    ip netns exec "$NS" taskset -c "$RECV_LIST" "${PRIO[@]}" tcpdump -i "$B" -n -s 0 "${bopt[@]}" -Z root -w "$out" \
        2>"$WORK/td.log" &
    CAP_PID=$!
    for _ in $(seq 100); do
        [ -s "$out" ] && break
        sleep 0.1
    done
    napi_pin
    sleep 0.5
    local rxd0 sn0 sent secs txd
    rxd0=$(ctr "$B" rx_dropped)
    sn0=$(softnet_drops)
    read -r sent secs txd < <(send "$rate" "$seed")
    sleep 1
    napi_off
    kill -0 "$CAP_PID" 2>/dev/null || echo "tcpdump exited early: $(cat "$WORK/td.log")" >&2
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=""
    local rec kd
    if command -v capinfos >/dev/null; then
        rec=$(capinfos -c -M "$out" 2>/dev/null | sed -n 's/^Number of packets: *\([0-9]*\).*/\1/p')
    else
        rec=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$WORK/td.log")
    fi
    kd=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$WORK/td.log")
    echo "$sent $secs ${rec:-0} ${kd:-0} $(( $(ctr "$B" rx_dropped) - rxd0 )) $(( $(softnet_drops) - sn0 )) $txd"
    rm -f "$out"
}

median() { sort -n | awk '{a[NR]=$1} END {printf "%.0f\n", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# R[system,rate,run]: one run's fields (run_xdprec's or run_tcpdump's line).
declare -A R
SYSTEMS=()
[ "$ONLY" = tcpdump ] || SYSTEMS+=(xdprec)
if [ "$ONLY" != xdprec ]; then
    for b in $TD_BUFS; do SYSTEMS+=("tcpdump:$b"); done
fi
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
    for rate in $STEPS; do
        for sys in "${SYSTEMS[@]}"; do
            case $sys in
            xdprec) R[$sys,$rate,$run]=$(run_xdprec "$rate" "$run") ;;
            tcpdump:*) R[$sys,$rate,$run]=$(run_tcpdump "$rate" "$run" "${sys#tcpdump:}") ;;
            esac
            echo "$sys $rate run $run: ${R[$sys,$rate,$run]}" >&2
        done
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# table SYSTEM HEADS EXPR...: a row per step (asked, median sent pps, recorded, loss and the
# worst run's loss, then the median of each awk EXPR over the run's fields). Sets BEST: the
# median sent rate of the highest step below the first step with loss in any run.
table() {
    local sys=$1 heads=$2 rate rows pps rec loss worst e line lost=0
    shift 2
    echo "| asked pps | sent pps | recorded | loss (worst) | $heads |"
    echo "|---|---|---|---|$(printf -- '---|%.0s' "$@")"
    BEST=0
    for rate in $STEPS; do
        rows=$(for r in $(seq "$RUNS"); do echo "${R[$sys,$rate,$r]}"; done)
        pps=$(echo "$rows" | awk '{printf "%.0f\n", $1 / $2}' | median)
        rec=$(echo "$rows" | awk '{print $3}' | median)
        loss=$(echo "$rows" | awk '{print $1 - $3}' | median)
        worst=$(echo "$rows" | awk '{print $1 - $3}' | sort -n | tail -1)
        line="| $rate | $pps | $rec | $loss ($worst) "
        for e in "$@"; do line+="| $(echo "$rows" | awk "{print $e}" | median) "; done
        echo "$line|"
        if [ "$worst" -gt 0 ]; then
            lost=1
        elif [ "$lost" = 0 ] && [ "$pps" -gt "$BEST" ]; then
            BEST=$pps
        fi
    done
    echo
}
td_name() { [ "$1" = 0 ] && echo "tcpdump -w (default buffer)" || echo "tcpdump -w -B $1"; }

echo "## Capture: xdprec vs tcpdump -w, 214-byte RTP frames on veth"
echo
echo "machine: $(nproc) vCPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r);" \
    "date $(date -u +%Y-%m-%dT%H:%MZ); commit ${XDPREC_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}" \
    "(+ $(git status --porcelain 2>/dev/null | wc -l) uncommitted files); load average before $LOAD0, after $LOAD1"
echo "steps of $SECS s, $RUNS run(s) each, systems in turn within a step; $QUEUES queue(s); sender core(s) $SEND_LIST, recorder core(s) $RECV_LIST$([ "$NAPI" = own ] && echo ", NAPI core(s) $(IFS=,; echo "${NAPI_CPUS[*]}")");" \
    "nice -10: $([ "$RT" = 1 ] && echo yes || echo no); receive-side NAPI on $(case $NAPI in own) echo "cores of its own$([ "$SPIN" = 1 ] && echo ", kept awake by an idle-class spinner")" ;; *) echo "the $NAPI's core" ;; esac); capture args: --dedup-window-ms 0 --spool $SPOOL $CAPTURE_ARGS; store and pcap under $OUTDIR ($(df --output=fstype "$OUTDIR" | tail -1))"
echo
echo "Per step: medians over runs; loss = sent - recorded (worst run in brackets)."
echo
declare -A FIG
for sys in "${SYSTEMS[@]}"; do
    case $sys in
    xdprec)
        echo "### xdprec capture"
        echo
        table "$sys" "ring full | fill empty | no_socket+redirect_failed+dropped | veth tx_dropped | segments | spare misses | slowest seal ms | longest away ms | waited for core ms | steal ms | most ring entries waiting" \
            '$4' '$5' '$6+$7+$8' '$11' '$12' '$15' '$16' '$18' '$19' '$20' '$22'
        ;;
    tcpdump:*)
        echo "### $(td_name "${sys#tcpdump:}")"
        echo
        table "$sys" "kernel dropped | rx_dropped | softnet | veth tx_dropped" '$4' '$5' '$6' '$7'
        ;;
    esac
    FIG[$sys]=$BEST
done
echo "Highest sent rate (median) below the first step with loss in any run:"
for sys in "${SYSTEMS[@]}"; do
    case $sys in
    xdprec) echo "- xdprec: ${FIG[$sys]} pps" ;;
    tcpdump:*)
        ratio=n/a
        if [ -n "${FIG[xdprec]:-}" ] && [ "${FIG[$sys]}" -gt 0 ]; then
            ratio=$(python3 -c "print(f'{${FIG[xdprec]}/${FIG[$sys]}:.2f}')")
        fi
        echo "- $(td_name "${sys#tcpdump:}"): ${FIG[$sys]} pps; xdprec / this: $ratio"
        ;;
    esac
done
if [ "$ONLY" != tcpdump ]; then
    last=""
    for rate in $STEPS; do last=${R[xdprec,$rate,$RUNS]}; done
    echo "$last" | awk '{printf "\nxdprec capture memory at the end of the last step: VmRSS %.0f MiB, VmHWM %.0f MiB.\n", $13 / 1024, $14 / 1024}'
fi
