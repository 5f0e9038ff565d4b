"""DALLE2-pytorch 1.15.6 timing one benchmark case, the upstream side of bench/model-side-by-side.sh.

    DALLE2_UPSTREAM_SRC=/tmp/upstream-env/src OMP_NUM_THREADS=2 /usr/bin/python3 bench/model_upstream.py CASE [runs]

CASE is one of the cases of `dalle2-bench case` (ModelCases.cs), built the same way: the same Unet options,
batch, 64 px images, seeds and threads. Training cases time upstream's DecoderTrainer step as train_decoder.py
runs it: trainer(images, image_embed=…, unet_number=1) (forward, backward) then trainer.update(1)
(gradient clipping, AdamW, EMA). Sampling cases time one Unet evaluation at t = 500 under no_grad:
forward_with_cond_scale with cond_scale 1 (one forward) or 3 (upstream runs a second forward for the
unconditional logits). Prints one JSON line: median and min milliseconds, peak RSS (ru_maxrss), and the
seconds from process start to the end of the first training step (or first evaluation).

The sources are laid out as tests/reference/README.md says (no upstream code is in this repository);
tests/reference/stubs stands in for the imports the decoder path does not use (accelerate: a single-process
CPU Accelerator).
"""
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.environ.get('DALLE2_UPSTREAM_SRC', '/tmp/upstream-env/src')
sys.path[:0] = [os.path.join(HERE, '..', 'tests', 'reference', 'stubs')] + \
    [os.path.join(UPSTREAM, p) for p in ('dalle2', 'einops', 'ema', 'rotary', 'resize_right')]
sys.dont_write_bytecode = True

import torch  # noqa: E402
from dalle2_pytorch.dalle2_pytorch import Unet, Decoder  # noqa: E402
from dalle2_pytorch.trainer import DecoderTrainer  # noqa: E402

# The cases, as bench/Dalle2Sharp.Bench/ModelCases.cs defines them.
TEST_UNET = dict(dim=16, image_embed_dim=768, cond_dim=16, channels=3, dim_mults=(1, 2, 4, 8), attn_dim_head=16, attn_heads=4,
                 self_attn=(False, True, True, True))
MEDIUM_UNET = dict(dim=64, image_embed_dim=768, channels=3, dim_mults=(1, 2, 4), self_attn=(False, True, True))
CASES = {
    'train-test-4': ('train', TEST_UNET, 4, None),
    'train-test-16': ('train', TEST_UNET, 16, None),
    'train-medium-4': ('train', MEDIUM_UNET, 4, None),
    'sample-test-4': ('sample', TEST_UNET, 4, 1.0),
    'guided-test-4': ('sample', TEST_UNET, 4, 3.0),
}


def seconds_since_process_start():
    # Field 22 of /proc/self/stat: start time in clock ticks after boot; /proc/uptime: seconds since boot.
    # The C# side reads the same two files.
    with open('/proc/self/stat') as f:
        start_ticks = int(f.read().rsplit(')', 1)[1].split()[19])
    with open('/proc/uptime') as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf('SC_CLK_TCK')


def main():
    case = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    kind, unet_options, batch, cond_scale = CASES[case]
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    torch.manual_seed(0)
    decoder = Decoder(unet=Unet(**unet_options), image_sizes=(64,), timesteps=1000, learned_variance=True)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, 64, 64, generator=g)
    embeds = torch.randn(batch, 768, generator=g)
    times = []
    first_step = None
    if kind == 'train':
        trainer = DecoderTrainer(decoder, lr=1e-4, wd=0.01, max_grad_norm=0.5, ema_beta=0.99, use_ema=True)

        def step():
            trainer(images, image_embed=embeds, unet_number=1)
            trainer.update(1)
    else:
        unet = decoder.unets[0].eval()
        x = torch.randn(batch, 3, 64, 64, generator=g)
        t = torch.full((batch,), 500, dtype=torch.long)

        def step():
            with torch.no_grad():
                unet.forward_with_cond_scale(x, t, image_embed=embeds, cond_scale=cond_scale)
    warmup = 2
    for i in range(warmup + runs):
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        if first_step is None:
            first_step = seconds_since_process_start()
        if i >= warmup:
            times.append(elapsed * 1000)
    times.sort()
    print(json.dumps({'case': case, 'side': 'upstream', 'batch': batch, 'runs': runs, 'ms_median': round(times[len(times) // 2], 1),
                      'ms_min': round(times[0], 1), 'first_step_s': round(first_step, 2),
                      'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      'threads': torch.get_num_threads(), 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
