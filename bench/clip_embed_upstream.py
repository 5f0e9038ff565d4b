"""openai/CLIP in PyTorch embedding the same shards as `clip-embed run` (the side-by-side baseline).

Reads DIR/shards/*.tar with the tarfile module, decodes with PIL, applies clip.clip._transform (bicubic
resize of the shorter side, centre crop, normalise), runs encode_image in batches and l2-normalises, as
clip-retrieval does; the weights are DIR/ViT-B-32-random.pt (a state dict) through clip.model.build_model.
Usage: OMP_NUM_THREADS=2 python3 bench/clip_embed_upstream.py DIR [batch] with openai/CLIP's source on
PYTHONPATH (its clip/ folder; /tmp/clip-env/clip as tests/reference/make_clip_vectors.py sets it up).
"""
import io, json, resource, sys, tarfile, time
from pathlib import Path

import torch
from PIL import Image
from clip.model import build_model
from clip.clip import _transform

folder = Path(sys.argv[1])
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "2")))
model = build_model(torch.load(folder / "ViT-B-32-random.pt", map_location="cpu")).float().eval()
preprocess = _transform(model.visual.input_resolution)
start = time.perf_counter()
images = 0
with torch.no_grad():
    for shard in sorted((folder / "shards").glob("*.tar")):
        pending = []
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".jpg"):
                    pending.append(preprocess(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")))
                    if len(pending) == batch:
                        e = model.encode_image(torch.stack(pending)); e = e / e.norm(dim=-1, keepdim=True); images += len(pending); pending = []
        if pending:
            e = model.encode_image(torch.stack(pending)); e = e / e.norm(dim=-1, keepdim=True); images += len(pending)
seconds = time.perf_counter() - start
print(json.dumps({"images": images, "seconds": round(seconds, 2), "images_per_second": round(images / seconds, 2), "batch": batch,
                  "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "threads": torch.get_num_threads()}))
