#!/usr/bin/env bash
# Search latency on a generated index of CALLS calls, and the indexer's memory on a capture
# and one 10x longer with the same concurrent calls. Prints markdown tables.
# Usage: scripts/bench-search.sh [CALLS] [WORKDIR]   (defaults: 1000000, /tmp/bench-search)
# Env: CARGO_TARGET_DIR (default target-searchbench), SHORT_S (default 60), CONCURRENT (200),
# SKIP_SEARCH=1 (memory part only).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-1000000}
WORK=${2:-/tmp/bench-search}
SHORT_S=${SHORT_S:-60}
CONCURRENT=${CONCURRENT:-200}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-searchbench}
BIN=$CARGO_TARGET_DIR/release

cargo build --release -q -p xdprec-index --example search_bench
cargo build --release -q -p xdprec
mkdir -p "$WORK"

echo "## Machine"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- commit: $(git rev-parse --short HEAD) (+ uncommitted tree)"
echo "- nproc: $(nproc); kernel: $(uname -r)"
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo

if [ -z "${SKIP_SEARCH:-}" ]; then
echo "## Search: $CALLS calls"
echo
echo '```'
"$BIN/examples/search_bench" --calls "$CALLS" --db "$WORK/index.sqlite" --runs 3 \
    --xdprec "$BIN/xdprec"
echo '```'
echo
echo '```'
"$BIN/examples/search_bench" --calls "$CALLS" --db "$WORK/index.sqlite" --runs 20 \
    --xdprec "$BIN/xdprec" --reuse --fix
echo '```'
echo
fi

echo "## Indexer memory: $CONCURRENT concurrent calls, ${SHORT_S} s vs $((SHORT_S * 10)) s"
echo
# Max RSS includes the mmap'd segment being read (file pages, bounded by the segment size);
# a second, sampled run (fresh --db) splits the peak into anonymous and file-backed pages.
echo "| capture | pcap MiB | index wall | max RSS MiB | peak RssAnon MiB | peak RssFile MiB | calls |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for secs in "$SHORT_S" $((SHORT_S * 10)); do
    d=$WORK/mem-$secs
    rm -rf "$d" && mkdir -p "$d"
    "$BIN/xdprec" replay --synth "$CONCURRENT" --call-secs 20 --duration "$secs" --seed 1 \
        --write-pcap "$d/cap.pcap" >/dev/null 2>&1
    "$BIN/xdprec" capture --pcap "$d/cap.pcap" --store "$d/store" >/dev/null 2>&1
    pcap_mib=$(( $(stat -c %s "$d/cap.pcap") / 1048576 ))
    rm -f "$d/cap.pcap"  # the store holds it now; keep the disk free
    /usr/bin/time -v "$BIN/xdprec" index --store "$d/store" >"$d/index.out" 2>"$d/time.txt"
    rss_kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$d/time.txt")
    wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$d/time.txt")
    ncalls=$("$BIN/xdprec" calls --store "$d/store" --json --all | wc -l)
    rm -f "$d"/resample.sqlite*
    "$BIN/xdprec" index --store "$d/store" --db "$d/resample.sqlite" >/dev/null 2>&1 &
    pid=$!
    anon=0 file=0
    while kill -0 "$pid" 2>/dev/null; do
        read -r a f < <(awk '/RssAnon/{a=$2} /RssFile/{f=$2} END{print a+0, f+0}' \
            "/proc/$pid/status" 2>/dev/null || echo "0 0")
        [ "${a:-0}" -gt "$anon" ] && anon=$a
        [ "${f:-0}" -gt "$file" ] && file=$f
        sleep 0.05
    done
    wait "$pid"
    echo "| ${secs} s | $pcap_mib | $wall | $((rss_kib / 1024)) | $((anon / 1024)) | $((file / 1024)) | $ncalls |"
done
