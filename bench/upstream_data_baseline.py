#!/usr/bin/python3
"""Upstream's input path, timed on the shards written by `dalle2-bench data` ([dir]/upstream and
[dir]/large): tar member bytes →
PIL open + convert("RGB") → torchvision RandomResizedCrop(size, scale=(0.75, 1), ratio=(1, 1)) →
ToTensor → torch.stack batches of 16, in one process with torch limited to 1 thread (per core).
Run with Debian's interpreter after `apt-get install python3-torchvision python3-pil`:
    /usr/bin/python3 bench/upstream_data_baseline.py /tmp/dalle2-data-bench
Prints one JSON object."""
import glob, io, json, sys, tarfile, time

import torch
from PIL import Image
from torchvision import transforms

torch.set_num_threads(1)
folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/dalle2-data-bench"
results = []
for photos, size in [(p, s) for p in ("upstream", "large") for s in (64, 256)]:
    files = sorted(glob.glob(f"{folder}/{photos}/*.tar"))
    preprocess = transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.75, 1.0), ratio=(1.0, 1.0)),
        transforms.ToTensor(),
    ])
    best = 0.0
    for _ in range(3):
        start, images, batch = time.perf_counter(), 0, []
        for path in files:
            with tarfile.open(path) as tar:
                for member in tar:
                    if not member.name.endswith(".jpg"):
                        continue
                    data = tar.extractfile(member).read()
                    img = Image.open(io.BytesIO(data)).convert("RGB")
                    batch.append(preprocess(img))
                    if len(batch) == 16:
                        torch.stack(batch)
                        images += len(batch)
                        batch = []
        if batch:
            torch.stack(batch)
            images += len(batch)
        best = max(best, images / (time.perf_counter() - start))
    results.append({"photos": photos, "size": size, "processes": 1, "images_per_second": round(best, 1)})
# The floor under upstream's path: PIL decode + convert("RGB") alone.
decode_only = []
for photos in ("upstream", "large"):
    with tarfile.open(sorted(glob.glob(f"{folder}/{photos}/*.tar"))[0]) as tar:
        jpgs = [tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")][:7]
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 3:
        for data in jpgs:
            Image.open(io.BytesIO(data)).convert("RGB")
            n += 1
    decode_only.append({"photos": photos, "images_per_second": round(n / (time.perf_counter() - start), 1)})
print(json.dumps({"benchmark": "upstream_data_baseline", "decode_only": decode_only, "torch": torch.__version__,
                  "pipeline": "PIL decode + convert RGB + torchvision RandomResizedCrop + ToTensor + stack 16; 1 thread; best of 3",
                  "results": results}, indent=2))
