# Writes legacy-state-dict.pth: a state dict in PyTorch's pre-1.6 (non-zip) serialization, the format
# of the published LPIPS v0.1 heads and torchvision's older weight files, with the cases a reader must
# get right: float32/float16/int64/bool storages, a transposed (non-contiguous) tensor, two tensors
# sharing one storage at different offsets, a 0-dim tensor and an nn.Module state dict's _metadata.
# Run with Debian's interpreter: /usr/bin/python3 make_legacy_state_dict.py OUT
import sys, collections, torch
base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8
shared = torch.arange(10, dtype=torch.float32) - 3.5
sd = collections.OrderedDict()
sd["layer.weight"] = base
sd["layer.weight_t"] = base.t()
sd["half"] = (torch.arange(6, dtype=torch.float32) / 3).half().reshape(2, 3)
sd["counts"] = torch.tensor([1, -2, 3_000_000_000], dtype=torch.int64)
sd["mask"] = torch.tensor([True, False, True])
sd["shared.a"] = shared[2:6]
sd["shared.b"] = shared[5:].reshape(5, 1)
sd["scalar"] = torch.tensor(2.25)
sd._metadata = collections.OrderedDict({"": {"version": 1}})
torch.save(sd, sys.argv[1], _use_new_zipfile_serialization=False)
