"""Reference numbers for Dalle2Sharp's flat AdamW/Adam + gradient clipping + EMA (Training/FlatAdamW.cs).

Runs PyTorch's own AdamW / Adam (torch 1.13, as DALLE2-pytorch 1.15.6's DecoderTrainer builds them:
betas 0.9/0.99, eps 1e-8, weight decay on >= 2-D tensors only, Adam when wd = 0), clip_grad_norm_
and zero_grad (1.13's default keeps zero-filled gradients), with formula parameters and gradients
that the C# test rebuilds: parameter k element i = sin(0.37*i + k), gradient at step s = cos(0.11*i + s + k)
scaled by 1 + k. Parameter 2 gets a gradient only from step 2 on (an optimizer member that joins late);
parameter 4 never gets one (no state). Writes tests/Dalle2Sharp.Tests/Training/Vectors/optimizer.json.

Usage: /usr/bin/python3 tests/reference/make_optimizer_vectors.py
"""
import json, math, os, torch

SHAPES = [[4, 3, 3, 3], [4], [8, 4], [8], [5, 5]]
LR, WD, MAX_NORM, STEPS, WARMUP = 3e-3, 0.01, 0.5, 5, 3
LATE, NEVER = 2, 4

def formula(shape, offset, rate, fn):
    n = math.prod(shape)
    return torch.tensor([fn(rate * i + offset) for i in range(n)], dtype=torch.float32).reshape(shape)

def run(weight_decay):
    params = [torch.nn.Parameter(formula(s, k, 0.37, math.sin)) for k, s in enumerate(SHAPES)]
    if weight_decay == 0:
        opt = torch.optim.Adam(params, lr=LR, betas=(0.9, 0.99), eps=1e-8)
    else:
        opt = torch.optim.AdamW([
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.99), eps=1e-8)
    norms = []
    for s in range(STEPS):
        for k, p in enumerate(params):
            if k == NEVER or (k == LATE and s < 2):
                continue
            g = formula(p.shape, s + k, 0.11, math.cos) * (1 + k)
            p.grad = g if p.grad is None else p.grad.add_(g)
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, MAX_NORM)))
        for group in opt.param_groups:
            group["lr"] = LR * min(1.0, (s + 1) / WARMUP)
        opt.step()
        opt.zero_grad()
    order = [p for g in opt.param_groups for p in g["params"]]
    return {
        "norms": norms,
        "params": [p.detach().flatten().tolist() for p in params],
        "state": [None if id(p) not in {id(q) for q in opt.state} else {
            "index": [id(q) for q in order].index(id(p)), "step": float(opt.state[p]["step"]),
            "exp_avg": opt.state[p]["exp_avg"].flatten().tolist(),
            "exp_avg_sq": opt.state[p]["exp_avg_sq"].flatten().tolist()} for p in params],
    }

out = {"torch": torch.__version__, "shapes": SHAPES, "lr": LR, "max_norm": MAX_NORM, "steps": STEPS, "warmup": WARMUP,
       "late": LATE, "never": NEVER, "adamw": run(WD), "adam": run(0.0), "weight_decay": WD}
path = os.path.join(os.path.dirname(__file__), "..", "Dalle2Sharp.Tests", "Training", "Vectors", "optimizer.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", os.path.normpath(path))
