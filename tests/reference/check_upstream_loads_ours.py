#!/usr/bin/env python3
"""Loads a Dalle2Sharp checkpoint into upstream DALLE2-pytorch 1.15.6's DecoderTrainer (with
ema-pytorch 0.2.4, as pinned by the reference environment; layout in README.md here) and trains one
more step, to show that our checkpoints continue in upstream.

    /usr/bin/python3 tests/reference/check_upstream_loads_ours.py CHECKPOINT.pth [UPSTREAM_OUT.pth]

The decoder is rebuilt from the config stored in the checkpoint (`config.decoder`).
"""
import json
import os
import sys
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.environ.get('DALLE2_UPSTREAM_SRC', '/tmp/upstream-env/src')
sys.path[:0] = [os.path.join(HERE, 'stubs')] + [os.path.join(UPSTREAM, p) for p in ('dalle2', 'einops', 'ema', 'rotary', 'resize_right')]

import torch  # noqa: E402
from dalle2_pytorch.dalle2_pytorch import Unet, Decoder  # noqa: E402
from dalle2_pytorch.trainer import DecoderTrainer  # noqa: E402

torch.set_num_threads(1)
path = sys.argv[1]
state = torch.load(path, map_location='cpu')
config = state['config']['decoder']
unet_configs = config.pop('unets')
unets = [Unet(**{k: v for k, v in u.items() if v is not None}) for u in unet_configs]
keep = ('image_size', 'image_sizes', 'timesteps', 'channels', 'learned_variance', 'beta_schedule', 'loss_type',
        'image_cond_drop_prob', 'text_cond_drop_prob')
decoder = Decoder(unet=tuple(unets), **{k: config[k] for k in keep if config.get(k) is not None})
train = state['config']['train']
trainer = DecoderTrainer(decoder, lr=train['lr'], wd=train['wd'], max_grad_norm=train['max_grad_norm'], ema_beta=train['ema_beta'])
before = {k: v.clone() for k, v in decoder.state_dict().items()}
loaded = trainer.load(path, only_model=False, strict=True)
changed = sum(not torch.equal(before[k], v) for k, v in decoder.state_dict().items())
print(f"loaded {path}: version {state['version']}, steps {trainer.steps.tolist()}, {changed} decoder tensors changed by the load")
print("ema initted/step:", [(e.initted.tolist(), e.step.tolist()) for e in trainer.ema_unets])
size = decoder.image_sizes[0]
embed_dim = unet_configs[0]['image_embed_dim']
loss = trainer(torch.rand(2, 3, size, size), image_embed=torch.randn(2, embed_dim), unet_number=1)
trainer.update(1)
print(f"one more step in upstream: loss {loss:.4f}, steps {trainer.steps.tolist()}")
if len(sys.argv) > 2:
    trainer.save(sys.argv[2], overwrite=True)
    print(f"saved upstream's checkpoint after that step to {sys.argv[2]}")
