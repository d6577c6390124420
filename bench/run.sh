#!/bin/sh
# run.sh -- runs the peer benchmark (build/bench/peers) and draws its chart.
#
#   sh bench/run.sh                  the full run with the defaults (every engine
#                                    and workload, 1,000,000 keys, 100-byte values,
#                                    up to 3 rounds within a 12-minute budget);
#                                    writes bench/RESULTS.md and bench/results.png
#   sh bench/run.sh -w read-hit -e tome,lmdb      any flags of build/bench/peers
#                                    (see build/bench/peers --help): a partial run,
#                                    written to $BUILD/bench/peers-out/ (RESULTS.md,
#                                    results.png), never over the committed results
#
# Environment: BUILD (default build), PEERS_DIR (where the stores live,
# default /var/tmp; the same file system as the repository on this machine).
# It builds the binary when it is missing (make peers).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/bench/peers
OUT=$BUILD/bench/peers-out

if [ ! -x "$BIN" ]; then
    if grep -q 'mk/bench.mk' Makefile; then make "BUILD=$BUILD" "$BIN"
    else make -f Makefile -f mk/bench.mk "BUILD=$BUILD" "$BIN"; fi
fi
full=1
if [ $# -gt 0 ]; then full=0; fi

mkdir -p "$OUT"
start=$(date +%s)
"$BIN" -d "${PEERS_DIR:-/var/tmp}" -o "$OUT" "$@"
if command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "datafile='$OUT/results.dat'; ratiofile='$OUT/ratios.dat'; outfile='$OUT/results.png'" bench/plot.gp
else
    echo "run.sh: gnuplot missing (sh bench/install-deps.sh): no chart" >&2
fi
if [ $full = 1 ]; then
    cp "$OUT/RESULTS.md" bench/RESULTS.md
    [ -f "$OUT/results.png" ] && cp "$OUT/results.png" bench/results.png
    echo "run.sh: bench/RESULTS.md and bench/results.png written ($(( $(date +%s) - start )) s)"
else
    echo "run.sh: partial run: $OUT/RESULTS.md and $OUT/results.png ($(( $(date +%s) - start )) s)"
fi
