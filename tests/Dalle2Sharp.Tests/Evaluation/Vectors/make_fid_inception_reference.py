# Writes fid-inception-reference.json: the feature taps of torch-fidelity's FeatureExtractorInceptionV3
# (the network torchmetrics' FID/KID/IS use: uint8 input, TF1 bilinear resize to 299) for two small
# uint8 images, with weights drawn from a seeded torch generator, so the test can draw the same
# weights in TorchSharp without the 91 MB weight file.
# Recipe (repeated in FidInceptionTests): g = Generator().manual_seed(31); for every key of
# ../fid-inception-weight-keys.json in its order: *.conv.weight and fc.weight uniform_(-b, b),
# b = 1/sqrt(fan_in); *.bn.weight and *.bn.running_var uniform_(0.5, 1.5); *.bn.bias, *.bn.running_mean
# and fc.bias uniform_(-0.05, 0.05); num_batches_tracked 0. Images: randint(0, 256, [2, 3, 37, 45]) uint8
# from the same generator.
# Run with Debian's interpreter and torch_fidelity on the path: /usr/bin/python3 make_fid_inception_reference.py KEYS OUT
import json, math, sys, tempfile, torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
keys = json.load(open(sys.argv[1]))["keys"]
g = torch.Generator().manual_seed(31)
sd = {}
for key, shape in keys:
    if key.endswith("num_batches_tracked"):
        sd[key] = torch.tensor(0)
    elif key.endswith("conv.weight") or key == "fc.weight":
        sd[key] = torch.empty(shape).uniform_(-1 / math.sqrt(math.prod(shape[1:])), 1 / math.sqrt(math.prod(shape[1:])), generator=g)
    elif key.endswith("bn.weight") or key.endswith("running_var"):
        sd[key] = torch.empty(shape).uniform_(0.5, 1.5, generator=g)
    else:
        sd[key] = torch.empty(shape).uniform_(-0.05, 0.05, generator=g)
images = torch.randint(0, 256, (2, 3, 37, 45), generator=g).to(torch.uint8)
with tempfile.NamedTemporaryFile(suffix=".pth") as f:
    torch.save(sd, f.name)
    taps = ["64", "192", "768", "2048", "logits_unbiased"]
    net = FeatureExtractorInceptionV3("inception-v3-compat", taps, feature_extractor_weights_path=f.name)
    with torch.no_grad():
        out = net(images)
json.dump({"generator": f"torch-fidelity FeatureExtractorInceptionV3 with torch {torch.__version__}",
           "taps": {t: [[round(v, 7) for v in row] for row in o.tolist()] for t, o in zip(taps, out)}},
          open(sys.argv[2], "w"))
print({t: o.abs().mean().item() for t, o in zip(taps, out)})
