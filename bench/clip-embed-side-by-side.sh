#!/usr/bin/env bash
# dalle2 embed vs openai/CLIP in PyTorch on the same shards, weights (random ViT-B/32) and threads,
# alternating rounds in one invocation (these 2-core machines swing by ±40 % between runs).
# Usage: CLIP_SRC=<openai/CLIP checkout> bench/clip-embed-side-by-side.sh DIR [rounds] [batch]
# (Debian's /usr/bin/python3 with python3-torch, python3-torchvision, python3-pil for the upstream side.)
set -euo pipefail
dir="${1:?folder for the shards and weights}"; rounds="${2:-3}"; batch="${3:-32}"
cd "$(dirname "$0")/.."
bench=(dotnet run -c Release --no-build --project bench/Dalle2Sharp.Bench --)
[ -f "$dir/ViT-B-32-random.pt" ] || "${bench[@]}" clip-embed prepare "$dir" >/dev/null
export OMP_NUM_THREADS=2
source bench/check-upstream-blas.sh
for r in $(seq "$rounds"); do
  ours=$("${bench[@]}" clip-embed run "$dir" "$batch" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["images_per_second"], d["rss_mb"])')
  theirs=$(/usr/bin/python3 bench/clip_embed_upstream.py "$dir" "$batch" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["images_per_second"], d["rss_mb"])')
  read -r ours_ips ours_rss <<<"$ours"; read -r theirs_ips theirs_rss <<<"$theirs"
  echo "round $r: ours $ours_ips images/s (peak RSS $ours_rss MB), openai/CLIP $theirs_ips images/s (peak RSS $theirs_rss MB)," \
       "speed ratio $(python3 -c "print(round($ours_ips/$theirs_ips, 2))"), memory ratio $(python3 -c "print(round($ours_rss/$theirs_rss, 2))")"
done
