#!/usr/bin/env bash
# All benchmarks in one report (markdown on stdout; progress and logs on stderr):
#  1. the criterion benchmarks of benches/ (cargo bench -p xdprec-benches): a table of the
#     median time per iteration and the throughput, read from criterion's
#     target/criterion/<group>/<bench>/new/{estimates,benchmark}.json;
#  2. `xdprec index` against `tshark -q -z sip,stat -2 -z rtp,streams` on the same captures
#     (a corpus file and a generated one): median wall time of N runs each, and the ratio;
#  3. scripts/bench-capture.sh and scripts/bench-replay.sh, when present and executable
#     (they need root and a release build of `xdprec`; their own output is included).
#
# Usage: scripts/bench-all.sh [--filter REGEX] [--runs N] [--synth-calls N] [--call-secs S]
#                             [--skip-criterion] [--skip-compare] [--skip-scripts]
#   --filter REGEX    only criterion benchmarks matching REGEX (criterion's own filter)
#   --runs N          runs per command in the tshark comparison (default 5)
#   --synth-calls N, --call-secs S   the generated capture: N concurrent G.711 calls of S
#                     seconds each (default 200 x 20 s: about 400,000 frames, 90 MB)
#
# Uses $CARGO_TARGET_DIR when set (else target/). Uses hyperfine when installed (its median),
# else a loop timed with `date +%s%N`. Figures from a shared VM are noisy: compare numbers
# from one run of this script, side by side, not across machines.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FILTER=""
RUNS=5
SYNTH_CALLS=200
CALL_SECS=20
DO_CRITERION=1
DO_COMPARE=1
DO_SCRIPTS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --filter) FILTER="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --synth-calls) SYNTH_CALLS="$2"; shift 2 ;;
    --call-secs) CALL_SECS="$2"; shift 2 ;;
    --skip-criterion) DO_CRITERION=0; shift ;;
    --skip-compare) DO_COMPARE=0; shift ;;
    --skip-scripts) DO_SCRIPTS=0; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d /tmp/xdprec-bench-all.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
log() { echo "bench-all: $*" >&2; }

# ---------- machine ----------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | wc -l)
echo "# xdprec benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- commit: $commit$([ "$dirty" -gt 0 ] && echo " (plus $dirty uncommitted files)")"
echo "- machine: $(nproc) CPUs ($cpu), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ---------- 1. criterion ----------
if [ "$DO_CRITERION" = 1 ]; then
    stamp="$WORK/stamp"
    touch "$stamp"
    log "cargo bench -p xdprec-benches (release build first; log: $WORK/cargo-bench.log)"
    args=(--noplot)
    [ -n "$FILTER" ] && args+=("$FILTER")
    if ! cargo bench -p xdprec-benches --benches -- "${args[@]}" >"$WORK/cargo-bench.log" 2>&1; then
        log "cargo bench failed; its log ends with:"
        tail -30 "$WORK/cargo-bench.log" >&2
    fi
    echo "## Criterion benchmarks (median of $(basename "$TARGET")/criterion/*/new/estimates.json)"
    echo
    # Messages the benches print when they skip a group (e.g. the probe without root).
    if grep -qE "SKIPPED|WARNING" "$WORK/cargo-bench.log"; then
        grep -E "SKIPPED|WARNING" "$WORK/cargo-bench.log" | sed 's/^/> /'
        echo
    fi
    python3 - "$TARGET/criterion" "$stamp" <<'EOF'
import json, os, sys
root, stamp = sys.argv[1], os.path.getmtime(sys.argv[2])
rows = []
for d, _, files in os.walk(root):
    if os.path.basename(d) != "new" or "estimates.json" not in files:
        continue
    est = os.path.join(d, "estimates.json")
    if os.path.getmtime(est) < stamp:
        continue  # from an earlier run
    try:
        median = json.load(open(est))["median"]["point_estimate"]  # ns per iteration
        bench = json.load(open(os.path.join(d, "benchmark.json")))
    except (OSError, ValueError, KeyError):
        continue
    tp = bench.get("throughput") or {}
    rows.append((bench.get("full_id") or os.path.relpath(os.path.dirname(d), root), median, tp))

def fmt_time(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"

def fmt_rate(n, unit):
    for p, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g} {p}{unit}"
    return f"{n:.3g} {unit}"

print("| benchmark | median | throughput | per element |")
print("|---|---|---|---|")
for name, ns, tp in sorted(rows):
    thr = per = ""
    if "Elements" in tp and ns > 0:
        n = tp["Elements"]
        thr = fmt_rate(n * 1e9 / ns, "elem/s")
        per = fmt_time(ns / n)
    elif "Bytes" in tp and ns > 0:
        thr = fmt_rate(tp["Bytes"] * 1e9 / ns, "B/s")
    print(f"| {name} | {fmt_time(ns)} | {thr} | {per} |")
if not rows:
    print("| (no benchmark ran) | | | |")
EOF
    echo
fi

# ---------- 2. xdprec index vs tshark ----------
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# time_runs NAME PREPARE COMMAND: prints the median wall time in seconds of $RUNS runs.
time_runs() {
    local name=$1 prepare=$2 cmd=$3
    if command -v hyperfine >/dev/null; then
        hyperfine --style none --runs "$RUNS" --prepare "$prepare" \
            --export-json "$WORK/hf-$name.json" "$cmd" >&2 || { echo nan; return; }
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' \
            "$WORK/hf-$name.json"
    else
        local i t0 t1 times=""
        for i in $(seq "$RUNS"); do
            bash -c "$prepare"
            t0=$(date +%s%N)
            if ! bash -c "$cmd" >/dev/null 2>&1; then
                echo nan
                return
            fi
            t1=$(date +%s%N)
            times+="$(( (t1 - t0) / 1000 ))"$'\n'
        done
        # microseconds -> seconds
        printf '%s' "$times" | median | awk '{print $1 / 1000000}'
    fi
}

if [ "$DO_COMPARE" = 1 ]; then
    echo "## xdprec index vs tshark (median wall time of $RUNS runs each)"
    echo
    log "cargo build --release -p xdprec (log: $WORK/cargo-build.log)"
    if ! cargo build --release -p xdprec >"$WORK/cargo-build.log" 2>&1; then
        echo "Skipped: \`cargo build --release -p xdprec\` failed:"
        echo
        echo '```'
        tail -15 "$WORK/cargo-build.log"
        echo '```'
    elif ! command -v tshark >/dev/null; then
        echo "Skipped: tshark is not installed (apt-get install tshark)."
    else
        XDPREC="$TARGET/release/xdprec"
        caps=()
        corpus=$(ls "$ROOT"/../shared/corpus/heplify/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap 2>/dev/null | head -1)
        [ -n "$corpus" ] && caps+=("$corpus")
        synth="$WORK/synth-${SYNTH_CALLS}x${CALL_SECS}s.pcap"
        log "generating $SYNTH_CALLS synthetic calls of $CALL_SECS s"
        if "$XDPREC" replay --synth "$SYNTH_CALLS" --call-secs "$CALL_SECS" --cps 1000 \
            --write-pcap "$synth" --seed 1 >"$WORK/synth.log" 2>&1; then
            caps+=("$synth")
        else
            echo "> the synthetic capture could not be written: $(tail -1 "$WORK/synth.log")"
        fi
        echo "tshark: \`tshark -r FILE -q -z sip,stat -2 -z rtp,streams\` (SIP statistics and RTP"
        echo "streams, two passes). xdprec: \`xdprec index --pcap FILE --db NEW.sqlite\` (calls, media"
        echo "correlation, RTP quality, written to SQLite), a fresh database each run."
        echo
        echo "| capture | frames | MB | xdprec index (s) | tshark (s) | tshark / xdprec |"
        echo "|---|---|---|---|---|---|"
        for cap in "${caps[@]}"; do
            frames=$(capinfos -c -M "$cap" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
            mb=$(du -m "$cap" | cut -f1)
            db="$WORK/index.sqlite"
            log "timing on $(basename "$cap")"
            tx=$(time_runs xdprec "rm -f $db $db-wal $db-shm $db-journal" \
                "$XDPREC index --pcap $cap --db $db")
            tt=$(time_runs tshark "true" "tshark -r $cap -q -z sip,stat -2 -z rtp,streams")
            ratio=$(python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{b/a:.1f}x' if a>0 and a==a and b==b else 'n/a')" "$tx" "$tt")
            printf '| %s | %s | %s | %.3f | %.3f | %s |\n' "$(basename "$cap")" "${frames:-?}" "$mb" "$tx" "$tt" "$ratio"
        done
        calls=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from calls').fetchone()[0])" "$WORK/index.sqlite" 2>/dev/null || echo "?")
        echo
        echo "Calls in the index of the last capture: $calls."
    fi
    echo
fi

# ---------- 3. the other helpers' scripts ----------
if [ "$DO_SCRIPTS" = 1 ]; then
    for s in bench-capture.sh bench-replay.sh; do
        echo "## scripts/$s"
        echo
        if [ -x "scripts/$s" ]; then
            log "running scripts/$s"
            if ! "scripts/$s" 2>"$WORK/$s.err"; then
                echo
                echo "> scripts/$s failed; its stderr ends with:"
                tail -10 "$WORK/$s.err" | sed 's/^/> /'
            fi
        elif [ -e "scripts/$s" ]; then
            echo "Skipped: scripts/$s is not executable."
        else
            echo "Skipped: scripts/$s does not exist."
        fi
        echo
    done
fi
