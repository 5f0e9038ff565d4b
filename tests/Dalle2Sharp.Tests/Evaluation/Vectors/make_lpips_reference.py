# Writes lpips-reference.json: LPIPS distances computed by the reference implementation (the `lpips`
# package, richzhang/PerceptualSimilarity) with weights drawn from a seeded torch generator, so the test
# can draw the same weights in TorchSharp without any weight file in the repository.
# Recipe (repeated in LpipsReferenceTests): g = Generator().manual_seed(seed); for every backbone tensor
# in torchvision's state_dict order (features.* only), then every head lin{i}.model.1.weight in order:
#   weight: uniform_(-b, b) with b = 1 / sqrt(fan_in) (fan_in = numel / out_channels); bias: uniform_(-0.05, 0.05);
#   head: uniform_(0, 0.1). Then x = uniform_(-1, 1) of [2, 3, 64, 64], y likewise, from the same generator.
# Run with Debian's interpreter and the lpips package on the path: /usr/bin/python3 make_lpips_reference.py OUT
import json, math, re, sys, torch, torchvision, lpips
out = {"generator": f"lpips (PerceptualSimilarity) with torch {torch.__version__}", "cases": []}
for net, seed in [("vgg", 21), ("alex", 22), ("squeeze", 23)]:
    model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
    g = torch.Generator().manual_seed(seed)
    backbone = {}
    for k, v in model.net.state_dict().items():
        m = re.match(r"slice\d+\.(\d+)\.(.*)", k)
        backbone[(int(m.group(1)), m.group(2))] = v
    with torch.no_grad():
        for (index, name) in sorted(backbone, key=lambda t: (t[0], t[1] != "weight")):
            v = backbone[(index, name)]
            if name.endswith("weight"):
                bound = 1 / math.sqrt(v.numel() / v.shape[0])
                v.copy_(torch.empty(v.shape).uniform_(-bound, bound, generator=g))
            else:
                v.copy_(torch.empty(v.shape).uniform_(-0.05, 0.05, generator=g))
        for lin in model.lins:
            w = lin.model[1].weight
            w.copy_(torch.empty(w.shape).uniform_(0, 0.1, generator=g))
        x = torch.empty(2, 3, 64, 64).uniform_(-1, 1, generator=g)
        y = torch.empty(2, 3, 64, 64).uniform_(-1, 1, generator=g)
        d = model(x, y).flatten().tolist()
    out["cases"].append({"net": net, "seed": seed, "distances": d})
    print(net, d)
json.dump(out, open(sys.argv[1], "w"), indent=1)
