"""Reference outputs of resize-right's resize as DALLE2-pytorch's resize_image_to calls it
(scale_factors = target / original; cubic, antialiasing, constant padding), for
tests/Dalle2Sharp.Tests/Models/Vectors/resize_right.json. Layout of the sources: README.md here.

    /usr/bin/python3 tests/reference/make_resize_right_vectors.py
"""
import json, math, os, sys

SRC = os.environ.get("DALLE2_UPSTREAM_SRC", "/tmp/upstream-env/src")
sys.path.insert(0, os.path.join(SRC, "resize_right"))
import torch
from resize_right import resize

torch.set_num_threads(1)


def formula(shape, s):
    n = math.prod(shape)
    return torch.tensor([0.5 + 0.5 * math.sin(0.37 * i + s) for i in range(n)], dtype=torch.float64).float().reshape(shape)


cases = []
for shape, target, s in [((1, 3, 37, 37), 16, 0.3), ((2, 2, 16, 16), 40, 0.6), ((1, 3, 8, 8), 16, 0.9), ((1, 1, 64, 64), 20, 1.2)]:
    x = formula(shape, s)
    y = resize(x, scale_factors=target / shape[-1]).clamp(0, 1)
    cases.append({"input": {"shape": list(shape), "s": s, "formula": "0.5+0.5*sin(0.37*i+s)"}, "target": target,
                  "output": {"shape": list(y.shape), "values": [float(f"{v:.7g}") for v in y.flatten().tolist()]}})

about = ("resize_right.resize(x, scale_factors=target/size) (cubic, antialiasing=True, pad_mode='constant'), "
         "then clamp(0, 1) as resize_image_to(clamp_range=(0, 1)); resize-right commit 510d4d5, torch " + torch.__version__)
out = os.path.join(os.path.dirname(__file__), "..", "Dalle2Sharp.Tests", "Models", "Vectors", "resize_right.json")
with open(out, "w") as f:
    json.dump({"about": about, "cases": cases}, f)
print("wrote", out)
