# Generates tests/Dalle2Sharp.Tests/Data/Vectors/pil-resample.json with Debian's Pillow + torchvision.
import base64, json, sys
import numpy as np
from PIL import Image
import torchvision
import torchvision.transforms.functional as F
rng = np.random.default_rng(7)
h, w = 29, 41
yy, xx = np.mgrid[0:h, 0:w]
base = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), 128 + 100 * np.sin(xx / 3.0) * np.cos(yy / 4.0)], -1)
src = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
img = Image.fromarray(src, "RGB")
filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
cases = []
def add(name, out, **args):
    cases.append(dict(name=name, width=out.size[0], height=out.size[1], pixels=base64.b64encode(np.asarray(out).tobytes()).decode(), **args))
for f, pf in filters.items():
    for size in [(17, 13), (40, 28), (60, 50), (41, 12), (5, 29)]:
        add(f"resize {f} {size}", img.resize(size, pf), filter=f, box=[0, 0, w, h])
    for box in [(2.5, 1.25, 37.75, 27.5), (0.0, 3.0, 41.0, 20.0)]:
        add(f"box {f} {box}", img.resize((15, 11), pf, box=box), filter=f, box=list(box))
    # torchvision's resized_crop on a PIL image = crop, then resize of the crop.
    tv = {"bilinear": F.InterpolationMode.BILINEAR, "bicubic": F.InterpolationMode.BICUBIC, "nearest": F.InterpolationMode.NEAREST}[f]
    add(f"resized_crop {f}", F.resized_crop(img, 3, 5, 20, 30, [16, 16], tv), filter=f, crop=[3, 5, 20, 30])
json.dump(dict(generator="Pillow " + Image.__version__ + ", torchvision " + torchvision.__version__ + " (Debian python3-pil, python3-torchvision)",
               width=w, height=h, source=base64.b64encode(src.tobytes()).decode(), cases=cases), open(sys.argv[1], "w"), indent=1)
print(len(cases), "cases")
