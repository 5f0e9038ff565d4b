"""openai/CLIP in PyTorch embedding the same shards as `clip-embed run` (the side-by-side baseline).

Reads DIR/shards/*.tar with the tarfile module, decodes with PIL, applies clip.clip._transform's steps (bicubic
resize of the shorter side, centre crop, normalise), runs encode_image in batches and l2-normalises, as
clip-retrieval does; the weights are DIR/ViT-B-32-random.pt (a state dict) through clip.model.build_model.
Usage: CLIP_SRC=<openai/CLIP checkout> OMP_NUM_THREADS=2 /usr/bin/python3 bench/clip_embed_upstream.py DIR [batch]
(/tmp/clip-env/clip as tests/reference/make_clip_vectors.py sets it up).
"""
import io, json, os, resource, sys, tarfile, time
from pathlib import Path

import torch
from PIL import Image
# clip/model.py alone: the package's __init__ would import the tokenizer and ftfy, which the benchmark does not use.
sys.path.insert(0, os.path.join(os.environ["CLIP_SRC"], "clip"))
from model import build_model  # noqa: E402
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor


def _transform(n_px):
    # clip.clip._transform, written out so that the benchmark does not import the tokenizer (and ftfy).
    return Compose([Resize(n_px, interpolation=InterpolationMode.BICUBIC), CenterCrop(n_px), lambda image: image.convert("RGB"), ToTensor(),
                    Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])

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
