# Generates tests/Dalle2Sharp.Tests/Data/Vectors/upstream-transforms.json: upstream's image path (PIL
# decode + convert("RGB") + torchvision transforms on the PIL image + ToTensor) applied to the photos of
# ../shared/data/upstream-test-shards/0.tar, each after torch.manual_seed(seed).
# Run with Debian's interpreter: /usr/bin/python3 make_upstream_transforms.py SHARD OUT
import base64, io, json, sys, tarfile
import torch, torchvision
from PIL import Image
from torchvision import transforms as T
shard, out = sys.argv[1], sys.argv[2]
pipelines = {
    "rrc24_flip": T.Compose([T.RandomResizedCrop(24, scale=(0.5, 1.0)), T.RandomHorizontalFlip(), T.ToTensor()]),
    "rrc20x28_bicubic": T.Compose([T.RandomResizedCrop((20, 28), scale=(0.3, 1.0), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor()]),
    "resize30_centercrop24": T.Compose([T.Resize(30), T.CenterCrop(24), T.ToTensor()]),
}
cases = []
with tarfile.open(shard) as tar:
    for member in sorted(tar.getmembers(), key=lambda m: m.name):
        if not member.name.endswith(".jpg"):
            continue
        image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
        for seed, (name, pipeline) in enumerate(pipelines.items()):
            torch.manual_seed(seed + 11)
            x = pipeline(image)
            pixels = (x * 255).round().to(torch.uint8)
            cases.append(dict(key=member.name[:-4], pipeline=name, seed=seed + 11, shape=list(x.shape),
                              pixels=base64.b64encode(pixels.numpy().tobytes()).decode()))
json.dump(dict(generator=f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {Image.__version__} (Debian)",
               cases=cases), open(out, "w"), indent=1)
print(len(cases), "cases")
