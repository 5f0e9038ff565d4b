#!/usr/bin/env python3
"""Reference vectors for Unet/Decoder options, produced by RUNNING upstream DALLE2-pytorch 1.15.6.

Writes tests/Dalle2Sharp.Tests/Models/Vectors/upstream_options.json (see README.md in this folder
for how to lay out the upstream sources). Nothing from upstream is copied here: this script only
imports it (plus the minimal stand-ins in ./stubs for imports the decoder path never uses).

Conventions (mirrored by the C# tests):
  * analytic weights: AnalyticWeights.Apply on each unet separately (sorted state-dict keys, ordinal)
  * formula tensors: element i (flattened, C order) = sin(0.37 * i + s), float64 -> float32;
    "01" formula tensors are 0.5 + 0.5 * sin(0.37 * i + s)
"""
import json
import sys
sys.dont_write_bytecode = True  # keep stubs/ free of __pycache__
import math
import os
import sys
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.environ.get('DALLE2_UPSTREAM_SRC', '/tmp/upstream-env/src')
sys.path[:0] = [os.path.join(HERE, 'stubs')] + [os.path.join(UPSTREAM, p) for p in ('dalle2', 'einops', 'ema', 'rotary', 'resize_right')]

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)

import dalle2_pytorch.dalle2_pytorch as up  # noqa: E402
from dalle2_pytorch.dalle2_pytorch import Unet, Decoder  # noqa: E402
from dalle2_pytorch.version import __version__ as UPSTREAM_VERSION  # noqa: E402

OUT = os.path.join(HERE, '..', 'Dalle2Sharp.Tests', 'Models', 'Vectors', 'upstream_options.json')
RESULT = {}

# ----------------------------------------------------------------------------- helpers


def analytic_(module):
    """Deterministic weights, identical to tests/Dalle2Sharp.Tests/Models/AnalyticWeights.cs."""
    sd = module.state_dict()
    keys = sorted(sd.keys())
    with torch.no_grad():
        for k, key in enumerate(keys):
            t = sd[key]
            n = t.numel()
            i = np.arange(n, dtype=np.uint64)
            v = ((i + np.uint64(7919 * k)) * np.uint64(2654435761)) % np.uint64(2 ** 32)
            r = 2.0 * v.astype(np.float64) / 4294967296.0 - 1.0
            if t.dim() >= 2:
                w = r / math.sqrt(n / t.shape[0])
            elif key.endswith('.weight') or key.endswith('.g') or key == 'g':
                w = 1 + 0.1 * r
            else:
                w = 0.02 * r
            t.copy_(torch.from_numpy(w.astype(np.float32)).reshape(t.shape))
    return [[key, list(sd[key].shape)] for key in keys]


def formula(shape, s, zero_one=False):
    n = int(np.prod(shape))
    v = np.sin(0.37 * np.arange(n, dtype=np.float64) + s)
    if zero_one:
        v = 0.5 + 0.5 * v
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def fdesc(shape, s, zero_one=False):
    return {'shape': list(shape), 's': s, 'formula': '0.5+0.5*sin(0.37*i+s)' if zero_one else 'sin(0.37*i+s)'}


def out(t):
    t = torch.as_tensor(t).detach().float()
    flat = t.reshape(-1).tolist()
    return {
        'shape': list(t.shape),
        'values': [float('%.7g' % x) for x in flat],
        'mean': float('%.9g' % t.mean().item()),
        'std': float('%.9g' % (t.std().item() if t.numel() > 1 else 0.0)),
    }


def scalar(t):
    return float('%.9g' % float(t))


def jsonable(v):
    if isinstance(v, (tuple, list)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return repr(v)


def unet_kwargs(unet):
    """Effective constructor kwargs of an (possibly Decoder-cast) upstream Unet."""
    loc = dict(unet._locals)
    extra = loc.pop('kwargs', {})
    loc.update(extra)
    return jsonable(loc)


def save():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        json.dump(RESULT, f, separators=(',', ':'))


def case(name):
    def deco(fn):
        try:
            RESULT['cases'][name] = fn()
        except Exception as e:  # record upstream failures instead of giving up
            import traceback
            RESULT['cases'][name] = {'upstream_error': f'{type(e).__name__}: {e}', 'traceback': traceback.format_exc()[-2000:]}
        print(name, 'error' if 'upstream_error' in RESULT['cases'][name] else 'ok', flush=True)
        save()
        return fn
    return deco


class FixedRandom:
    """Stands in for the `random` module inside dalle2_pytorch.dalle2_pytorch."""
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


@contextmanager
def patched_random(value):
    old = up.random
    up.random = FixedRandom(value)
    try:
        yield
    finally:
        up.random = old


@contextmanager
def injected_noise(base_s, log):
    """Replaces torch.randn / torch.randn_like with formula tensors sin(0.37 i + base_s + call_index)."""
    old_randn, old_like = torch.randn, torch.randn_like
    counter = [0]

    def nxt(shape):
        s = base_s + counter[0]
        counter[0] += 1
        log.append({'call': 'randn', 'shape': list(shape), 's': s})
        return formula(tuple(shape), s)

    torch.randn = lambda *shape, **kw: nxt(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)) else shape)
    torch.randn_like = lambda t, **kw: nxt(tuple(t.shape)).to(t.dtype)
    try:
        yield
    finally:
        torch.randn, torch.randn_like = old_randn, old_like


B = 2
BASE = dict(dim=16, image_embed_dim=32, cond_dim=16, channels=3, channels_out=3, dim_mults=(1, 2),
            cond_on_image_embeds=True, attn_dim_head=8, attn_heads=2)

X16 = ((B, 3, 16, 16), 0.1)
EMB = ((B, 32), 0.2)
TIMES = [3, 700]


def make_unet(**over):
    kw = {**BASE, **over}
    unet = Unet(**kw)
    keys = analytic_(unet)
    unet.eval()
    return unet, kw, keys


def decoder_params_outside_unets(decoder):
    return [n for n, _ in decoder.named_parameters() if not n.startswith('unets.')]


RESULT.update({
    'about': 'Reference numbers from running upstream DALLE2-pytorch ' + UPSTREAM_VERSION + ' (CPU, float32, torch ' + torch.__version__ + ') '
             'via tests/reference/make_upstream_option_vectors.py. Weights: analytic (AnalyticWeights.cs) applied to each unet separately '
             '(keys of unet.state_dict() sorted ordinally; the Decoder has no learned parameters outside its unets, see decoder_params_outside_unets '
             'per case). Inputs: formula tensors sin(0.37*i+s) (or 0.5+0.5*sin for [0,1] images, marked "0.5+0.5*sin"). All modules in eval() mode; '
             'decoders built with image_cond_drop_prob=0 and text_cond_drop_prob=0 unless stated, so prob_mask_like draws nothing.',
    'upstream_version': UPSTREAM_VERSION,
    'torch_version': torch.__version__,
    'randn_check': {
        'about': 'torch.manual_seed(1234); torch.randn(2, 3, 16, 16) (default CPU generator, float32): first 16 values, to check a C# generator replays upstream draws',
        'values': None,
    },
    'cases': {},
})
torch.manual_seed(1234)
RESULT['randn_check']['values'] = [float('%.9g' % v) for v in torch.randn(2, 3, 16, 16).reshape(-1)[:16].tolist()]


def std_inputs():
    return formula(*X16), torch.tensor(TIMES), formula(*EMB)


def std_inputs_desc():
    return {'x': fdesc(*X16), 'time': TIMES, 'image_embed': fdesc(*EMB)}


# ----------------------------------------------------------------------------- case 1


@case('01_baseline_forward')
def _():
    unet, kw, keys = make_unet()
    x, t, e = std_inputs()
    with torch.no_grad():
        y = unet(x, t, image_embed=e)
    return {'about': 'unet = Unet(**unet_kwargs); analytic weights; y = unet.forward(x, time, image_embed=image_embed) (cond drop probs 0)',
            'unet_kwargs': jsonable(kw), 'effective_unet_kwargs': unet_kwargs(unet), 'state_dict_keys': keys,
            'inputs': std_inputs_desc(), 'output': out(y)}


# ----------------------------------------------------------------------------- case 5 (simple forwards)

VARIANTS = {
    'sparse_attn': dict(sparse_attn=True),
    'cross_embed_downsample': dict(cross_embed_downsample=True),
    'memory_efficient': dict(memory_efficient=True),
    'resnet_weight_standardization': dict(resnet_weight_standardization=True),
    'cosine_sim_cross_attn': dict(cosine_sim_cross_attn=True),
    'cosine_sim_self_attn': dict(cosine_sim_self_attn=True),
    'scale_skip_connection': dict(scale_skip_connection=True),
    'pixel_shuffle_upsample_false': dict(pixel_shuffle_upsample=False),
    # extras (cheap)
    'self_attn_true': dict(self_attn=True),
    'combine_upsample_fmaps': dict(combine_upsample_fmaps=True),
    'init_cross_embed_false': dict(init_cross_embed=False),
    'add_image_embeds_to_time_false': dict(add_image_embeds_to_time=False),
    'dim_mults_124': dict(dim_mults=(1, 2, 4)),
    'attend_at_middle_false': dict(attend_at_middle=False),
}

for vname, over in VARIANTS.items():
    def _make(over=over):
        unet, kw, keys = make_unet(**over)
        x, t, e = std_inputs()
        with torch.no_grad():
            y = unet(x, t, image_embed=e)
        return {'about': f'baseline kwargs + {over}; analytic weights; y = unet.forward(x, time, image_embed=image_embed)',
                'unet_kwargs': jsonable(kw), 'effective_unet_kwargs': unet_kwargs(unet), 'state_dict_keys': keys,
                'inputs': std_inputs_desc(), 'output': out(y)}
    case('05_option_' + vname)(_make)


# ----------------------------------------------------------------------------- decoder helpers

XS01 = ((B, 3, 16, 16), 0.3)     # x_start image in [0,1] (0.5+0.5*sin)
NOISE = ((B, 3, 16, 16), 0.5)
LOSS_TIMES = [10, 600]


def make_decoder(unet_over=None, unets=None, **dec_over):
    if unets is None:
        unets = [{**BASE, **(unet_over or {})}]
    unet_objs = [Unet(**kw) for kw in unets]
    dkw = dict(image_size=16, timesteps=1000, image_cond_drop_prob=0., text_cond_drop_prob=0., learned_variance=False)
    dkw.update(dec_over)
    decoder = Decoder(unet_objs if len(unet_objs) > 1 else unet_objs[0], **dkw)
    keys = [analytic_(u) for u in decoder.unets]
    decoder.eval()
    info = {'unet_kwargs': jsonable(unets), 'decoder_kwargs': jsonable(dkw),
            'effective_unet_kwargs': [unet_kwargs(u) for u in decoder.unets],
            'state_dict_keys': keys, 'decoder_params_outside_unets': decoder_params_outside_unets(decoder)}
    return decoder, info


def pmv_out(res):
    model_mean, posterior_variance, posterior_log_variance, x_start = res
    return {'model_mean': out(model_mean), 'posterior_variance': out(posterior_variance),
            'posterior_log_variance': out(posterior_log_variance), 'x_start': out(x_start)}


PMV_X = ((B, 3, 16, 16), 0.7)
PMV_T = [5, 400]

# ----------------------------------------------------------------------------- case 2


for pname, flags in {'eps': {}, 'predict_x_start': dict(predict_x_start=True), 'predict_v': dict(predict_v=True)}.items():
    def _make(flags=flags, pname=pname):
        decoder, info = make_decoder(**flags)
        unet, ns = decoder.unets[0], decoder.noise_schedulers[0]
        xs, noise, e = formula(*XS01, zero_one=True), formula(*NOISE), formula(*EMB)
        with torch.no_grad():
            loss = decoder.p_losses(unet, xs, torch.tensor(LOSS_TIMES), image_embed=e, noise_scheduler=ns,
                                    predict_x_start=decoder.predict_x_start[0], predict_v=decoder.predict_v[0],
                                    noise=noise, learned_variance=False)
            pmv = decoder.p_mean_variance(unet, formula(*PMV_X), torch.tensor(PMV_T), e, ns, clip_denoised=True,
                                          predict_x_start=decoder.predict_x_start[0], predict_v=decoder.predict_v[0],
                                          learned_variance=False)
        return {'about': 'decoder = Decoder(Unet(**unet_kwargs), **decoder_kwargs); analytic weights on decoder.unets[0]; '
                         'loss = decoder.p_losses(decoder.unets[0], x_start, times, image_embed=image_embed, noise_scheduler=decoder.noise_schedulers[0], '
                         f'predict_x_start={decoder.predict_x_start[0]}, predict_v={decoder.predict_v[0]}, noise=noise, learned_variance=False) '
                         '(p_losses normalizes x_start to [-1,1] itself: x*2-1); '
                         'p_mean_variance = decoder.p_mean_variance(unet, x=pmv_x, t=pmv_t, image_embed, noise_scheduler, clip_denoised=True, same predict flags, learned_variance=False) '
                         '-> (model_mean, posterior_variance, posterior_log_variance, x_start); pmv_x is NOT normalized.',
                **info,
                'inputs': {'x_start': fdesc(*XS01, zero_one=True), 'noise': fdesc(*NOISE), 'times': LOSS_TIMES, 'image_embed': fdesc(*EMB),
                           'pmv_x': fdesc(*PMV_X), 'pmv_t': PMV_T},
                'loss': scalar(loss), 'p_mean_variance': pmv_out(pmv)}
    case('02_decoder_' + pname)(_make)


# ----------------------------------------------------------------------------- case 3 self_cond

SC = ((B, 3, 16, 16), 0.9)


@case('03_self_cond_forward')
def _():
    unet, kw, keys = make_unet(self_cond=True)
    x, t, e = std_inputs()
    with torch.no_grad():
        y = unet(x, t, image_embed=e, self_cond=formula(*SC))
        y0 = unet(x, t, image_embed=e)
    return {'about': 'Unet(**unet_kwargs) with self_cond=True; y = unet.forward(x, time, image_embed=image_embed, self_cond=self_cond); '
                     'y_no_self_cond = same without self_cond (upstream then concatenates zeros_like(x))',
            'unet_kwargs': jsonable(kw), 'effective_unet_kwargs': unet_kwargs(unet), 'state_dict_keys': keys,
            'inputs': {**std_inputs_desc(), 'self_cond': fdesc(*SC)}, 'output': out(y), 'output_no_self_cond': out(y0)}


@case('03_self_cond_decoder_loss')
def _():
    res = {}
    for pname, flags in {'eps': {}, 'predict_x_start': dict(predict_x_start=True)}.items():
        decoder, info = make_decoder(unet_over=dict(self_cond=True), **flags)
        unet, ns = decoder.unets[0], decoder.noise_schedulers[0]
        xs, noise, e = formula(*XS01, zero_one=True), formula(*NOISE), formula(*EMB)
        for rv, label in ((0.0, 'random_0.0_self_cond_used'), (0.9, 'random_0.9_self_cond_skipped')):
            with torch.no_grad(), patched_random(rv):
                loss = decoder.p_losses(unet, xs, torch.tensor(LOSS_TIMES), image_embed=e, noise_scheduler=ns,
                                        predict_x_start=decoder.predict_x_start[0], noise=noise, learned_variance=False)
            res.setdefault(pname, {'info': info})[label] = scalar(loss)
    return {'about': 'decoder.p_losses(decoder.unets[0], x_start, times, image_embed, noise_scheduler, predict_x_start=..., noise=noise, learned_variance=False) '
                     'with dalle2_pytorch.dalle2_pytorch.random replaced by an object whose random() returns 0.0 (branch `random() < 0.5` taken: '
                     'a first no-grad unet pass gives self_cond = its prediction (the parsed pred, i.e. eps or x0 prediction, not converted), '
                     'then the loss pass uses it) or 0.9 (branch skipped: self_cond None -> zeros)',
            'inputs': {'x_start': fdesc(*XS01, zero_one=True), 'noise': fdesc(*NOISE), 'times': LOSS_TIMES, 'image_embed': fdesc(*EMB)},
            'losses': res}


# ----------------------------------------------------------------------------- case 4 text

TXT = ((B, 5, 24), 0.4)


def text_encodings():
    t = formula(*TXT)
    t[1, 3:] = 0.
    return t


for mtl in (8, 4):
    def _make(mtl=mtl):
        unet, kw, keys = make_unet(cond_on_text_encodings=True, text_embed_dim=24, max_text_len=mtl)
        x, t, e = std_inputs()
        te = text_encodings()
        r = {}
        with torch.no_grad():
            r['forward'] = out(unet(x, t, image_embed=e, text_encodings=te))
            r['forward_image_and_text_drop_1'] = out(unet(x, t, image_embed=e, text_encodings=te, image_cond_drop_prob=1., text_cond_drop_prob=1.))
            r['forward_text_drop_1'] = out(unet(x, t, image_embed=e, text_encodings=te, text_cond_drop_prob=1.))
            r['forward_image_drop_1'] = out(unet(x, t, image_embed=e, text_encodings=te, image_cond_drop_prob=1.))
            r['forward_no_text_encodings'] = out(unet(x, t, image_embed=e))
            r['forward_with_cond_scale_3'] = out(unet.forward_with_cond_scale(x, t, image_embed=e, text_encodings=te, cond_scale=3.))
        return {'about': f'Unet(**unet_kwargs) (cond_on_text_encodings, text_embed_dim=24, max_text_len={mtl}); '
                         'forward(x, time, image_embed=..., text_encodings=te[, image_cond_drop_prob=1.][, text_cond_drop_prob=1.]); '
                         'forward_no_text_encodings: text_encodings omitted (no text tokens appended to mid_c at all); '
                         'forward_with_cond_scale(x, time, image_embed, text_encodings=te, cond_scale=3.) = null + (cond - null)*3 where null uses both drop probs 1. '
                         'Upstream text mask: text_mask = any(text_encodings != 0, dim=-1) (row 1 tokens 3,4 are all zero -> masked); '
                         'tokens = text_to_cond(te)[:, :max_text_len], padded with zeros/mask False up to max_text_len; '
                         'masked or dropped positions are replaced by null_text_embed[:, position]; mid_c = cat(time_tokens, image_tokens, text_tokens) (all max_text_len positions).',
                'unet_kwargs': jsonable(kw), 'effective_unet_kwargs': unet_kwargs(unet), 'state_dict_keys': keys,
                'inputs': {**std_inputs_desc(), 'text_encodings': {**fdesc(*TXT), 'then': 'te[1, 3:] = 0 (row 1, tokens 3 and 4 all zeros)'}},
                'outputs': r}
    case(f'04_text_max_text_len_{mtl}')(_make)

# ----------------------------------------------------------------------------- case 6 lowres

X32 = ((B, 3, 32, 32), 0.15)
LR32 = ((B, 3, 32, 32), 0.25)
LOWRES_LEVELS = [200, 50]


@case('06_lowres_unet_forward')
def _():
    r = {}
    for name, over, lvl in (('lowres_noise_cond', dict(lowres_noise_cond=True), LOWRES_LEVELS), ('no_lowres_noise_cond', {}, None)):
        unet, kw, keys = make_unet(lowres_cond=True, cond_on_image_embeds=False, **over)
        x, t, e = formula(*X32), torch.tensor(TIMES), formula(*EMB)
        with torch.no_grad():
            y = unet(x, t, image_embed=e, lowres_cond_img=formula(*LR32),
                     lowres_noise_level=torch.tensor(lvl) if lvl is not None else None)
        r[name] = {'unet_kwargs': jsonable(kw), 'effective_unet_kwargs': unet_kwargs(unet), 'state_dict_keys': keys,
                   'lowres_noise_level': lvl, 'output': out(y)}
    return {'about': 'Unet(**unet_kwargs) with lowres_cond=True, cond_on_image_embeds=False (image_embed passed but unused); '
                     'y = unet.forward(x32, time, image_embed=image_embed, lowres_cond_img=lowres_cond_img[, lowres_noise_level=torch.tensor(levels)]). '
                     'lowres_cond_img is concatenated after x at the input AND before to_out.',
            'inputs': {'x': fdesc(*X32), 'time': TIMES, 'image_embed': fdesc(*EMB), 'lowres_cond_img': fdesc(*LR32)},
            'variants': r}


IMG32_01 = ((B, 3, 32, 32), 0.35)


@case('06_lowres_conditioner')
def _():
    LC = up.LowresConditioner
    img = formula(*IMG32_01, zero_one=True)
    r = {}
    # blur path (use_noise False): resize 32->16 nearest (+clamp), blur, resize 16->32 nearest (+clamp)
    lc = LC(downsample_first=True, use_blur=True, blur_prob=0.5, blur_sigma=0.6, blur_kernel_size=3, use_noise=False,
            input_image_range=(0., 1.), normalize_img_fn=up.normalize_neg_one_to_one, unnormalize_img_fn=up.unnormalize_zero_to_one)
    with torch.no_grad():
        with patched_random(0.0):
            blurred, lv = lc(img, target_image_size=32, downsample_image_size=16)
        with patched_random(0.9):
            unblurred, _ = lc(img, target_image_size=32, downsample_image_size=16)
        down16 = up.resize_image_to(img, 16, clamp_range=(0., 1.), nearest=True)
        blur_only = up.gaussian_blur2d(down16, (3, 3), (0.6, 0.6))
        blur_only_sigma_1_k5 = up.gaussian_blur2d(down16, (5, 5), (1.0, 1.0))
    r['blur_random_0.0'] = out(blurred)
    r['no_blur_random_0.9'] = out(unblurred)
    r['down16_nearest'] = out(down16)
    r['gaussian_blur2d_k3_sigma0.6_of_down16'] = out(blur_only)
    r['gaussian_blur2d_k5_sigma1.0_of_down16'] = out(blur_only_sigma_1_k5)
    # noise path
    lcn = LC(downsample_first=True, use_blur=False, use_noise=True, input_image_range=(0., 1.),
             normalize_img_fn=up.normalize_neg_one_to_one, unnormalize_img_fn=up.unnormalize_zero_to_one)
    levels = torch.tensor([200, 999])
    with torch.no_grad():
        torch.manual_seed(77)
        noised, lv = lcn.noise_image(img, levels)
        torch.manual_seed(77)
        drawn = torch.randn_like(img)
        ns = lcn.noise_scheduler
        check = ns.q_sample(img * 2 - 1, t=levels, noise=drawn)
        check = (check + 1) * 0.5
    r['noise_image_levels_200_999'] = out(noised)
    r['noise_image_drawn_noise'] = out(drawn)
    r['noise_image_max_abs_diff_vs_q_sample_recompute'] = scalar((noised - check).abs().max())
    r['noise_image_min_max'] = [scalar(noised.min()), scalar(noised.max())]
    return {'about': 'up.LowresConditioner(downsample_first=True, use_blur=True, blur_prob=0.5, blur_sigma=0.6, blur_kernel_size=3, use_noise=False, '
                     'input_image_range=(0,1), normalize_img_fn=normalize_neg_one_to_one, unnormalize_img_fn=unnormalize_zero_to_one) called as '
                     'lc(img32, target_image_size=32, downsample_image_size=16) with module `random` patched so random() returns 0.0 (blur applied) / 0.9 (not): '
                     'F.interpolate(nearest) 32->16 then clamp(0,1), gaussian_blur2d(k=(3,3), sigma=(0.6,0.6)), F.interpolate(nearest) 16->32, clamp(0,1). '
                     'NOTE gaussian_blur2d is kornia.filters.gaussian_blur2d in upstream; here it is the stand-in tests/reference/stubs/kornia/filters.py '
                     '(kornia math: 1-D gaussian x=arange(k)-k//2, exp(-x^2/(2 sigma^2)) normalized, separable, reflect padding), NOT kornia itself. '
                     'noise_image: LowresConditioner(use_blur=False, use_noise=True, ...).noise_image(img32, noise_levels=tensor([200, 999])) after torch.manual_seed(77): '
                     'normalize (x*2-1), q_sample on a linear 1000-step schedule with noise=torch.randn_like (the one draw; recorded as noise_image_drawn_noise), '
                     'unnormalize ((x+1)/2). No clamp (see noise_image_min_max: outside [0,1]).',
            'inputs': {'img32': fdesc(*IMG32_01, zero_one=True)}, 'outputs': r}


# ----------------------------------------------------------------------------- case 7 learned variance

for cf, pxs in ((True, False), (False, False), (True, True)):
    def _make(cf=cf, pxs=pxs):
        decoder, info = make_decoder(learned_variance=True, learned_variance_constrain_frac=cf, predict_x_start=pxs)
        unet, ns = decoder.unets[0], decoder.noise_schedulers[0]
        xs, noise, e = formula(*XS01, zero_one=True), formula(*NOISE), formula(*EMB)
        r = {}
        with torch.no_grad():
            for times in ([0, 500], LOSS_TIMES):
                total = decoder.p_losses(unet, xs, torch.tensor(times), image_embed=e, noise_scheduler=ns, noise=noise, learned_variance=True,
                                         predict_x_start=pxs)
                r[f'times_{times[0]}_{times[1]}'] = {'loss_total': scalar(total)}
            pmv = decoder.p_mean_variance(unet, formula(*PMV_X), torch.tensor(PMV_T), e, ns, clip_denoised=True, learned_variance=True, predict_x_start=pxs)
        return {'about': f'Decoder(..., learned_variance=True, learned_variance_constrain_frac={cf}, predict_x_start={pxs}) -> unet channels_out 6; '
                         f'loss_total = decoder.p_losses(unet, x_start, times, image_embed, noise_scheduler, noise=noise, learned_variance=True, predict_x_start={pxs}) '
                         '(NOTE upstream quirk: inside p_losses the vb term calls p_mean_variance(..., clip_denoised=False, learned_variance=True, model_output=unet_output) '
                         'WITHOUT predict_x_start/predict_v, so the vb term always treats the prediction as noise; var_interp_frac = (v+1)/2, then sigmoid((v+1)/2) if constrain_frac) '
                         '(= simple mse on the first 3 output channels + vb_loss_weight(0.001) * mean(vb), vb = decoder NLL where t==0 else KL, in bits); '
                         'p_mean_variance(unet, pmv_x, pmv_t, image_embed, ns, clip_denoised=True, learned_variance=True) '
                         'also returns the learned posterior_variance/log_variance (interp of log beta and clipped posterior log var).',
                **info,
                'inputs': {'x_start': fdesc(*XS01, zero_one=True), 'noise': fdesc(*NOISE), 'image_embed': fdesc(*EMB), 'pmv_x': fdesc(*PMV_X), 'pmv_t': PMV_T},
                'losses': r, 'p_mean_variance': pmv_out(pmv)}
    case(f'07_learned_variance_constrain_frac_{cf}' + ('_predict_x_start' if pxs else ''))(_make)


# ----------------------------------------------------------------------------- case 8 p2

for gamma in (0.5, 1.0):
    def _make(gamma=gamma):
        decoder, info = make_decoder(p2_loss_weight_gamma=gamma, p2_loss_weight_k=1)
        unet, ns = decoder.unets[0], decoder.noise_schedulers[0]
        xs, noise, e = formula(*XS01, zero_one=True), formula(*NOISE), formula(*EMB)
        with torch.no_grad():
            loss = decoder.p_losses(unet, xs, torch.tensor(LOSS_TIMES), image_embed=e, noise_scheduler=ns, noise=noise, learned_variance=False)
        w = ns.p2_loss_weight[torch.tensor(LOSS_TIMES)]
        return {'about': f'Decoder(..., p2_loss_weight_gamma={gamma}, p2_loss_weight_k=1); loss = decoder.p_losses(unet, x_start, times, image_embed, noise_scheduler, noise=noise, learned_variance=False); '
                         'per-sample mse is multiplied by p2_loss_weight[t] = (k + acp/(1-acp))^-gamma before the batch mean',
                **info,
                'inputs': {'x_start': fdesc(*XS01, zero_one=True), 'noise': fdesc(*NOISE), 'times': LOSS_TIMES, 'image_embed': fdesc(*EMB)},
                'loss': scalar(loss), 'p2_loss_weight_at_times': [scalar(v) for v in w]}
    case(f'08_p2_gamma_{gamma}')(_make)


# ----------------------------------------------------------------------------- case 9 dynamic thresholding

@case('09_dynamic_threshold')
def _():
    decoder, info = make_decoder(predict_x_start=True, use_dynamic_thres=True, dynamic_thres_percentile=0.95)
    unet, ns = decoder.unets[0], decoder.noise_schedulers[0]
    e = formula(*EMB)
    mo = formula((B, 3, 16, 16), 1.1)
    mo = mo * torch.tensor([3.0, 1.5]).view(B, 1, 1, 1)
    with torch.no_grad():
        pmv = decoder.p_mean_variance(unet, formula(*PMV_X), torch.tensor(PMV_T), e, ns, clip_denoised=True, predict_x_start=True,
                                      learned_variance=False, model_output=mo)
        s = torch.quantile(mo.reshape(B, -1).abs(), 0.95, dim=-1).clamp(min=1.)
        pmv_unet = decoder.p_mean_variance(unet, formula(*PMV_X), torch.tensor(PMV_T), e, ns, clip_denoised=True, predict_x_start=True, learned_variance=False)
        raw = unet(formula(*PMV_X), torch.tensor(PMV_T), image_embed=e)
        s_unet = torch.quantile(raw.reshape(B, -1).abs(), 0.95, dim=-1).clamp(min=1.)
        thr = decoder.dynamic_threshold(mo)
    return {'about': 'Decoder(..., predict_x_start=True, use_dynamic_thres=True, dynamic_thres_percentile=0.95); '
                     'decoder.p_mean_variance(unet, pmv_x, pmv_t, image_embed, ns, clip_denoised=True, predict_x_start=True, learned_variance=False, model_output=model_output) '
                     'with model_output = sin(0.37*i+1.1) over (2,3,16,16) times per-image scale [3.0, 1.5]; '
                     's = torch.quantile(|x0|.flatten(1), 0.95, dim=-1) (linear interpolation, per image) clamped min 1; x0 = clamp(x0, -s, s)/s. '
                     'dynamic_threshold_of_model_output = decoder.dynamic_threshold(model_output). '
                     'p_mean_variance_from_unet: same call without model_output (the unet computes it), with s_unet its thresholds.',
            **info,
            'inputs': {'pmv_x': fdesc(*PMV_X), 'pmv_t': PMV_T, 'image_embed': fdesc(*EMB),
                       'model_output': {**fdesc((B, 3, 16, 16), 1.1), 'then': 'multiplied by [3.0, 1.5] per image'}},
            's_per_image': [scalar(v) for v in s], 'p_mean_variance': pmv_out(pmv),
            'dynamic_threshold_of_model_output': out(thr),
            's_unet_per_image': [scalar(v) for v in s_unet], 'p_mean_variance_from_unet': pmv_out(pmv_unet)}


# ----------------------------------------------------------------------------- case 10 / 12 sampling

SAMPLE_EMB = ((B, 32), 0.2)


def sampling_decoder(**over):
    kw = dict(timesteps=10, beta_schedule='cosine')
    kw.update(over)
    return make_decoder(**kw)


def record_unet_calls(decoder):
    """Wraps unet.forward_with_cond_scale to log (img in, time) for each denoising step."""
    unet = decoder.unets[0]
    calls = []
    orig = unet.forward_with_cond_scale

    def wrapped(x, t, *a, **kw):
        y = orig(x, t, *a, **kw)
        calls.append({'time': t.tolist(), 'img_in': out(x), 'unet_output': out(y)})
        return y
    unet.forward_with_cond_scale = wrapped
    return calls


def ddim_step0_detail(decoder, calls, coefs):
    ns = decoder.noise_schedulers[0]
    img = torch.tensor(calls[0]['img_in']['values']).view(calls[0]['img_in']['shape'])
    pred = torch.tensor(calls[0]['unet_output']['values']).view(calls[0]['unet_output']['shape'])
    t = torch.tensor(calls[0]['time'])
    with torch.no_grad():
        x0 = decoder.dynamic_threshold(ns.predict_start_from_noise(img, t=t, noise=pred))
        pn = ns.predict_noise_from_start(img, t=t, x0=x0)
    return {'about': 'recomputed from the recorded (7-digit) step-0 img_in / unet_output with upstream functions: '
                     'x_start = decoder.dynamic_threshold(ns.predict_start_from_noise(img, t, pred)) (static clamp [-1,1]); '
                     'pred_noise = ns.predict_noise_from_start(img, t, x_start); next img = x_start*sqrt(alpha_next) + c1*noise(s=2001) + c2*pred_noise',
            'x_start': out(x0), 'pred_noise': out(pn)}


@case('10_ddim_eta_1_injected_noise')
def _():
    decoder, info = sampling_decoder(sample_timesteps=5, ddim_sampling_eta=1.0)
    calls = record_unet_calls(decoder)
    log = []
    with injected_noise(2000.0, log):
        img = decoder.sample(image_embed=formula(*SAMPLE_EMB), cond_scale=1.0)
    ns = decoder.noise_schedulers[0]
    acp = ns.alphas_cumprod
    times = list(reversed(torch.linspace(0., 10, steps=5 + 2)[:-1].int().tolist()))
    pairs = [p for p in zip(times[:-1], times[1:]) if p[0] > p[1]]
    coefs = []
    for (t, tn) in pairs:
        a, an = acp[t], acp[tn]
        c1 = 1.0 * ((1 - a / an) * (1 - an) / (1 - a)).sqrt()
        c2 = ((1 - an) - c1 ** 2).sqrt()
        coefs.append({'time': t, 'time_next': tn, 'alpha': scalar(a), 'alpha_next': scalar(an), 'c1': scalar(c1), 'c2': scalar(c2)})
    return {'about': 'Decoder(timesteps=10, beta_schedule="cosine", sample_timesteps=5, ddim_sampling_eta=1.0, ...); analytic weights; '
                     'torch.randn and torch.randn_like replaced (globally, during the call) by formula tensors: the k-th call (k from 0) returns sin(0.37*i + 2000 + k); '
                     'img = decoder.sample(image_embed=image_embed, cond_scale=1.0) (returns unnormalized (x+1)/2). '
                     'Per step: alpha = alphas_cumprod[time], alpha_next = alphas_cumprod[time_next] (note: at time_next == 0 this is alphas_cumprod[0], not 1); '
                     'x0 = predict_start_from_noise(img, t, pred) clamped to [-1,1]; pred_noise = predict_noise_from_start(img, t, x0); '
                     'c1 = eta*sqrt((1-alpha/alpha_next)*(1-alpha_next)/(1-alpha)); c2 = sqrt(1-alpha_next-c1^2); '
                     'img = x0*sqrt(alpha_next) + c1*noise + c2*pred_noise, noise = randn_like(img) except on the last step (time_next == 0) where it is 0 and NOT drawn. '
                     'steps[k].img_in is the image fed to the unet at step k (the previous step\'s result).',
            **info, 'inputs': {'image_embed': fdesc(*SAMPLE_EMB)},
            'random_calls': log, 'time_pairs': pairs, 'coefficients': coefs, 'steps': calls, 'output': out(img),
            'step0_detail': ddim_step0_detail(decoder, calls, coefs)}



@case('10_ddpm_injected_noise')
def _():
    decoder, info = sampling_decoder()
    calls = record_unet_calls(decoder)
    log = []
    with injected_noise(3000.0, log):
        img = decoder.sample(image_embed=formula(*SAMPLE_EMB), cond_scale=1.0)
    return {'about': 'Decoder(timesteps=10, beta_schedule="cosine", learned_variance=False, ...); torch.randn/randn_like replaced by formula tensors sin(0.37*i + 3000 + k) for the k-th call; '
                     'img = decoder.sample(image_embed=image_embed, cond_scale=1.0). DDPM: initial img = randn(shape); each p_sample draws randn_like(x) '
                     '(also at t == 0, where it is multiplied by 0); x_{t-1} = model_mean + nonzero_mask*exp(0.5*posterior_log_variance_clipped)*noise.',
            **info, 'inputs': {'image_embed': fdesc(*SAMPLE_EMB)},
            'random_calls': log, 'steps': calls[:3] + calls[-1:], 'steps_note': 'steps recorded: the first 3 and the last', 'output': out(img)}


def seeded_sample(name, about, **over):
    def _make():
        decoder, info = sampling_decoder(**over)
        torch.manual_seed(1234)
        img = decoder.sample(image_embed=formula(*SAMPLE_EMB), cond_scale=1.0)
        return {'about': about, **info, 'inputs': {'image_embed': fdesc(*SAMPLE_EMB)}, 'seed': 1234, 'output': out(img)}
    case(name)(_make)


DDPM_DRAWS = ('default CPU generator after torch.manual_seed(1234): (1) torch.randn((2,3,16,16)) initial image; then for time = 9..0 '
              '(10 steps): one torch.randn_like(x) of shape (2,3,16,16) per step inside p_sample, drawn AFTER the unet call and also at t == 0 '
              '(masked to 0 there). 11 draws total, all float32 normal.')
seeded_sample('12_sample_ddpm_seed_1234',
              'Decoder(Unet(**unet_kwargs), image_size=16, timesteps=10, beta_schedule="cosine", learned_variance=False, cond drop probs 0); analytic weights; '
              'torch.manual_seed(1234); img = decoder.sample(image_embed=image_embed, cond_scale=1.0) (output in [0,1]: (x+1)/2). Draws: ' + DDPM_DRAWS)
seeded_sample('12_sample_ddpm_learned_variance_seed_1234',
              'As 12_sample_ddpm_seed_1234 but learned_variance=True (unet channels_out 6; posterior log variance interpolated from the unet\'s extra channels). Draws: ' + DDPM_DRAWS,
              learned_variance=True)
DDIM_DRAWS = ('default CPU generator after torch.manual_seed(1234): (1) torch.randn((2,3,16,16)) initial image; time pairs '
              '(from times = linspace(0, 10, 7)[:-1].int() reversed = [8,6,5,3,1,0]): (8,6),(6,5),(5,3),(3,1),(1,0); after the unet call of each pair except the '
              'last (time_next == 0) one torch.randn_like(img) (2,3,16,16) -- drawn even when eta = 0. 5 draws total.')
seeded_sample('12_sample_ddim_eta_0_seed_1234',
              'Decoder(..., timesteps=10, beta_schedule="cosine", sample_timesteps=5, ddim_sampling_eta=0.0); torch.manual_seed(1234); decoder.sample(image_embed=image_embed, cond_scale=1.0). Draws: ' + DDIM_DRAWS,
              sample_timesteps=5, ddim_sampling_eta=0.0)
seeded_sample('12_sample_ddim_eta_1_seed_1234',
              'Decoder(..., timesteps=10, beta_schedule="cosine", sample_timesteps=5, ddim_sampling_eta=1.0); torch.manual_seed(1234); decoder.sample(image_embed=image_embed, cond_scale=1.0). Draws: ' + DDIM_DRAWS,
              sample_timesteps=5, ddim_sampling_eta=1.0)


# ----------------------------------------------------------------------------- case 11 cascade

XS32_01 = ((B, 3, 32, 32), 0.45)
LR32_01 = ((B, 3, 32, 32), 0.55)
NOISE32 = ((B, 3, 32, 32), 0.65)

for use_noise in (False, True):
    def _make(use_noise=use_noise):
        u1 = dict(BASE)
        u2 = {**BASE, 'cond_on_image_embeds': False, 'lowres_cond': True}
        decoder, info = make_decoder(unets=[u1, u2], image_size=None, image_sizes=(16, 32), use_noise_for_lowres_cond=use_noise)
        e = formula(*EMB)
        r = {}
        with torch.no_grad():
            l1 = decoder.p_losses(decoder.unets[0], formula(*XS01, zero_one=True), torch.tensor(LOSS_TIMES), image_embed=e,
                                  noise_scheduler=decoder.noise_schedulers[0], noise=formula(*NOISE), learned_variance=decoder.learned_variance[0])
            lvl = torch.tensor([100, 300]) if use_noise else None
            l2 = decoder.p_losses(decoder.unets[1], formula(*XS32_01, zero_one=True), torch.tensor(LOSS_TIMES), image_embed=e,
                                  noise_scheduler=decoder.noise_schedulers[1], lowres_cond_img=formula(*LR32_01, zero_one=True),
                                  noise=formula(*NOISE32), learned_variance=decoder.learned_variance[1], lowres_noise_level=lvl)
        r['unet1_loss'] = scalar(l1)
        r['unet2_loss'] = scalar(l2)
        return {'about': f'Decoder((Unet(**u1), Unet(**u2)), image_sizes=(16, 32), timesteps=1000, learned_variance=False, use_noise_for_lowres_cond={use_noise}); '
                         'default beta schedules -> ("cosine", "linear"); unet 2 is cast with lowres_cond=True, cond_on_image_embeds=False'
                         + (', lowres_noise_cond=True' if use_noise else '') + '. '
                         'unet1_loss = decoder.p_losses(decoder.unets[0], x_start16, times, image_embed, noise_scheduler=decoder.noise_schedulers[0], noise=noise16, learned_variance=False); '
                         'unet2_loss = decoder.p_losses(decoder.unets[1], x_start32, times, image_embed, noise_scheduler=decoder.noise_schedulers[1], lowres_cond_img=lowres32 (in [0,1]; p_losses normalizes it to [-1,1]), '
                         f'noise=noise32, learned_variance=False, lowres_noise_level={[100, 300] if use_noise else None}).',
                **info,
                'inputs': {'x_start16': fdesc(*XS01, zero_one=True), 'noise16': fdesc(*NOISE), 'times': LOSS_TIMES, 'image_embed': fdesc(*EMB),
                           'x_start32': fdesc(*XS32_01, zero_one=True), 'lowres32': fdesc(*LR32_01, zero_one=True), 'noise32': fdesc(*NOISE32),
                           'lowres_noise_level': [100, 300] if use_noise else None},
                'losses': r}
    case(f'11_cascade_use_noise_for_lowres_cond_{use_noise}')(_make)

@case('13_decoder_forward_seeded_default_drop_probs')
def _():
    unet = Unet(**BASE)
    dkw = dict(image_size=16, timesteps=1000, learned_variance=False)   # default image_cond_drop_prob=0.1, text_cond_drop_prob=0.5
    decoder = Decoder(unet, **dkw)
    keys = [analytic_(u) for u in decoder.unets]
    decoder.train()
    img = formula(*XS01, zero_one=True)
    e = formula(*EMB)
    torch.manual_seed(42)
    with torch.no_grad():
        loss = decoder(img, image_embed=e)
    torch.manual_seed(42)
    times = torch.randint(0, 1000, (B,))
    noise = torch.randn(B, 3, 16, 16)
    img_keep = torch.zeros((B,)).float().uniform_(0, 1) < (1 - 0.1)
    text_keep = torch.zeros((B,)).float().uniform_(0, 1) < (1 - 0.5)
    return {'about': 'Decoder(Unet(**BASE), image_size=16, timesteps=1000, learned_variance=False) with DEFAULT image_cond_drop_prob=0.1, text_cond_drop_prob=0.5; '
                     'analytic weights; decoder.train(); torch.manual_seed(42); loss = decoder(image01, image_embed=image_embed) (Decoder.forward, unet_number 1). '
                     'Random draws in order (default CPU generator): times = torch.randint(0, 1000, (2,)); noise = torch.randn_like(x_start) (2,3,16,16); '
                     'in Unet.forward: image keep mask = torch.zeros(2).uniform_(0,1) < 0.9, then text keep mask = torch.zeros(2).uniform_(0,1) < 0.5 '
                     '(the text mask is drawn even though there are no text encodings). The replayed draws are recorded below.',
            'unet_kwargs': jsonable(BASE), 'decoder_kwargs': jsonable(dkw), 'effective_unet_kwargs': [unet_kwargs(u) for u in decoder.unets],
            'state_dict_keys': keys, 'decoder_params_outside_unets': decoder_params_outside_unets(decoder),
            'inputs': {'image01': fdesc(*XS01, zero_one=True), 'image_embed': fdesc(*EMB)},
            'replayed_draws': {'times': times.tolist(), 'noise_first8': [scalar(v) for v in noise.reshape(-1)[:8]],
                               'image_keep_mask': img_keep.tolist(), 'text_keep_mask': text_keep.tolist()},
            'loss': scalar(loss)}


@case('13_check_replayed_forward_equals_p_losses')
def _():
    # the same as the previous case but with the draws passed explicitly, to prove the draw order listed there
    c = RESULT['cases']['13_decoder_forward_seeded_default_drop_probs']
    unet = Unet(**BASE)
    decoder = Decoder(unet, image_size=16, timesteps=1000, learned_variance=False)
    analytic_(decoder.unets[0])
    decoder.train()
    torch.manual_seed(42)
    times = torch.randint(0, 1000, (B,))
    noise = torch.randn(B, 3, 16, 16)
    with torch.no_grad():
        loss = decoder.p_losses(decoder.unets[0], formula(*XS01, zero_one=True), times, image_embed=formula(*EMB),
                                noise_scheduler=decoder.noise_schedulers[0], noise=noise, learned_variance=False)
    return {'about': 'torch.manual_seed(42); times = randint(0,1000,(2,)); noise = randn(2,3,16,16); loss = decoder.p_losses(..., noise=noise) '
                     '(the unet then draws the two keep masks itself) -- equal to the Decoder.forward loss if the listed draw order is right',
            'loss': scalar(loss), 'equal_to_forward_loss': scalar(loss) == c.get('loss')}


save()
print('wrote', os.path.normpath(OUT), os.path.getsize(OUT), 'bytes')
