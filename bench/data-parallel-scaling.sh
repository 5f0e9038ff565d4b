#!/usr/bin/env bash
# Data-parallel scaling on one machine: the test-config Unet's training step (forward, backward, gradient averaging,
# clipping, AdamW, EMA) on a global batch of 8 at 64 px, as 1 process × 2 threads (batch 8) and as 2 MPI ranks × 1 thread
# (batch 4 each), alternating within each round. Prints images/s of each, the ratio, and the all-reduce cost per step.
# Usage: bench/data-parallel-scaling.sh [rounds] [runs per measurement]   (needs Open MPI: apt-get install openmpi-bin)
set -euo pipefail
rounds="${1:-3}"; runs="${2:-5}"
cd "$(dirname "$0")/.."
bench=bench/Dalle2Sharp.Bench/bin/Release/net10.0/linux-x64/dalle2-bench.dll
out="$(mktemp)"; trap 'rm -f "$out"' EXIT
# (from the first "{": under mpirun .NET may first write a terminal mode sequence)
one() { python3 -c 'import json,sys; t=sys.stdin.read(); d=json.loads(t[t.index("{"):]); d.pop("machine",None); print(json.dumps(d))'; }
for r in $(seq "$rounds"); do
  OMP_NUM_THREADS=2 dotnet "$bench" case dp-train-test-8 "$runs" | one | tee -a "$out"
  mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 dotnet "$bench" case dp-train-test-8 "$runs" | one | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
one = [r for r in rows if r["ranks"] == 1]; two = [r for r in rows if r["ranks"] == 2]
med = statistics.median
ratios = [t["images_per_s"] / o["images_per_s"] for o, t in zip(one, two)]
print(f"\n1 rank x 2 threads: {med(r['images_per_s'] for r in one):.2f} images/s (median step {med(r['ms_median'] for r in one):.0f} ms)")
print(f"2 ranks x 1 thread: {med(r['images_per_s'] for r in two):.2f} images/s (median step {med(r['ms_median'] for r in two):.0f} ms)")
print(f"2 ranks / 1 rank: min {min(ratios):.2f}, median {med(ratios):.2f}")
print(f"all-reduce per step: {med(r['allreduce_ms'] for r in two):.1f} ms for {two[0]['allreduce_bytes'] / 2**20:.1f} MiB of gradients")
PY
