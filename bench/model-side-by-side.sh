#!/usr/bin/env bash
# Dalle2Sharp vs DALLE2-pytorch 1.15.6, case by case (bench/Dalle2Sharp.Bench/ModelCases.cs, bench/model_upstream.py):
# each case in a fresh process per side (peak RSS is that case's), the two sides alternating within every round,
# both at the same threads. Prints each measurement as it comes, then per case the ratios upstream/ours
# (time: > 1 means we are faster; memory: ours/upstream, < 1 means we use less), min and median over rounds.
# Usage: DALLE2_UPSTREAM_SRC=/tmp/upstream-env/src bench/model-side-by-side.sh [rounds] [threads] [cases…]
# (sources laid out as tests/reference/README.md says; Debian's /usr/bin/python3 with python3-torch and OpenBLAS).
set -euo pipefail
rounds="${1:-3}"; threads="${2:-2}"; shift $(( $# > 2 ? 2 : $# ))
cases=("$@"); [ ${#cases[@]} -gt 0 ] || cases=(train-test-4 train-test-16 train-medium-4 sample-test-4 guided-test-4)
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="$threads" DALLE2_UPSTREAM_SRC="${DALLE2_UPSTREAM_SRC:-/tmp/upstream-env/src}"
source bench/check-upstream-blas.sh
runs() { case "$1" in train-test-16|train-medium-4) echo 5 ;; *) echo 10 ;; esac; }
out="$(mktemp)"; trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    dotnet bench/Dalle2Sharp.Bench/bin/Release/net10.0/linux-x64/dalle2-bench.dll case "$c" "$(runs "$c")" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("machine",None); print(json.dumps(d))' | tee -a "$out"
    /usr/bin/python3 bench/model_upstream.py "$c" "$(runs "$c")" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\n{'case':16} {'ours ms (med)':>13} {'upstream ms':>12} {'speed up/ours min / med':>24} {'RSS ours/up med':>16} {'first step ours/up med':>23}")
for case in dict.fromkeys(r['case'] for r in rows):
    ours = [r for r in rows if r['case'] == case and r['side'] == 'ours']
    ups = [r for r in rows if r['case'] == case and r['side'] == 'upstream']
    speed = [u['ms_median'] / o['ms_median'] for o, u in zip(ours, ups)]
    rss = [o['peak_rss_mb'] / u['peak_rss_mb'] for o, u in zip(ours, ups)]
    first = [o['first_step_s'] / u['first_step_s'] for o, u in zip(ours, ups)]
    med = statistics.median
    print(f"{case:16} {med(o['ms_median'] for o in ours):13.1f} {med(u['ms_median'] for u in ups):12.1f} "
          f"{min(speed):11.2f} / {med(speed):.2f}x {med(rss):15.2f} {med(first):22.2f}")
PY
