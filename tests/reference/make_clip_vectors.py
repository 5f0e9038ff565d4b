#!/usr/bin/env python3
"""Reference vectors for the C# port of OpenAI CLIP, produced by RUNNING openai/CLIP with PyTorch (CPU).

Writes, under tests/Dalle2Sharp.Tests/Clip/Vectors/:
  * ViT-Tiny.pt.gz            (gzipped) a tiny CLIP model (VisionTransformer image tower) saved the way OpenAI's released
                              .pt files are: a TorchScript archive made with torch.jit.trace_module (methods
                              encode_image, encode_text, forward), top-level buffers input_resolution/
                              context_length/vocab_size, and the weights that clip.model.convert_weights touches
                              stored as float16 (the rest float32).
  * clip_reference.json       hyper-parameters, archive tensor list, inputs and outputs of encode_image,
                              encode_text, forward (logits) and of DALLE2-pytorch 1.15.6's OpenAIClipAdapter
                              (embed_text / embed_image), computed exactly as clip.load(path, device="cpu",
                              jit=False) runs them (build_model(state_dict) then .float()).
  * tokenizer_reference.json  clip.simple_tokenizer.SimpleTokenizer().encode and clip.tokenize(truncate=True)
                              for 44 captions, with the cleaned text.

Nothing from upstream is copied here: the script imports it from a source tree outside the repository.

Environment (/tmp/clip-env, never committed)
--------------------------------------------
Needs Debian's python3-torch 1.13 (CPU), python3-numpy, python3-regex, python3-packaging, python3-tqdm,
python3-torchvision and python3-pil, tested with Python 3.11 and python3-regex 0.1.20221031 (regex 2022.10.31):

    apt-get install -y python3-torch python3-torchvision python3-regex python3-packaging python3-tqdm \
        python3-numpy python3-pil

The pure-Python sources, from bare mirrors (or clones) of the repositories:

    E=/tmp/clip-env; mkdir -p $E/clip $E/ftfy $E/wcwidth
    git --git-dir=<openai/CLIP.git>         archive d05afc436d78f1c48dc0dbf8e5980a9d471f35f6 | tar -x -C $E/clip
    git --git-dir=<rspeer/python-ftfy.git>  archive v6.1.1                                   | tar -x -C $E/ftfy
    git --git-dir=<jquast/wcwidth.git>      archive 0.2.5                                    | tar -x -C $E/wcwidth

openai/CLIP has no release tags; d05afc43 ("Pin GitHub Actions workflow references (#537)") is its main
head. ftfy 6.1.1 (commit 02a634c7bb8e35c281d4088d8c0efd5bf3feef4b) is the 6.1.x release CLIP users have
(CLIP's requirements.txt pins nothing); wcwidth 0.2.5 (29c32b382e3cca9f424020b38b31fee2cf416e00) is only
imported by ftfy.formatting and never affects fix_text.

Optional cross-check: if DALLE2-pytorch 1.15.6 and its decoder-path dependencies are laid out as in README.md
(/tmp/upstream-env/src, or $DALLE2_UPSTREAM_SRC), the script also instantiates the real
dalle2_pytorch.OpenAIClipAdapter on the archive and asserts that its embed_text / embed_image equal the
values stored here (bit for bit). Without those sources that check is skipped (and recorded as skipped).

Model
-----
ViT-Tiny: embed_dim 32, image 32, patch 8, vision transformer 2 layers of width 128; text transformer 2 layers of
width 128, context 77, vocab 49408. Both transformers have 2 attention heads (build_model derives heads as
width // 64), so the multi-head split/merge is exercised. Weights: CLIP's own initialize_parameters under
torch.manual_seed, plus seeded non-trivial LayerNorm/bias values (so every tensor matters and outputs are not
degenerate); token_embedding rows are zero except the ids the captions use (+ sot/eot/0), so the archive
compresses. Only the ViT family is produced: the C# port refuses ModifiedResNet (RN50, ...) archives.

Differences from the released archives that torch 1.13 on CPU imposes: the trace runs in float32 on CPU (CPU
torch 1.13 has no float16 conv/matmul), so the archived code casts with dtype 6 (float) on device "cpu" where the
released code has 5 (half) on "cuda:0"; the float16 weights are set after tracing (the traced module shares its
parameters). Class names are __torch__.clip.model.* (released: __torch__.multimodal.model.multimodal_transformer.*),
possibly ___torch_mangle_N-qualified; the archive "version" record is 4.

Run
---
    /usr/bin/python3 tests/reference/make_clip_vectors.py          # ~10 s, single-threaded
    CLIP_ENV=/path/to/clip-env /usr/bin/python3 tests/reference/make_clip_vectors.py

The output is deterministic on one torch build (torch.set_num_threads(1), fixed seeds).

Number format: every float is a float32 value written as the shortest decimal string that round-trips to that
float32 (numpy's repr of float32); parse it with float.Parse (or double.Parse and cast: the script asserts both
give the same float32).
"""
import sys
sys.dont_write_bytecode = True
import hashlib  # noqa: E402
import json  # noqa: E402
import gzip  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import zipfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP_ENV = os.environ.get('CLIP_ENV', '/tmp/clip-env')
UPSTREAM = os.environ.get('DALLE2_UPSTREAM_SRC', '/tmp/upstream-env/src')
sys.path[:0] = [os.path.join(CLIP_ENV, p) for p in ('clip', 'ftfy', 'wcwidth')]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torchvision  # noqa: E402,F401  (the real one, before any stub path is added)
import tqdm  # noqa: E402,F401
import packaging  # noqa: E402,F401

import clip  # noqa: E402
import ftfy  # noqa: E402
import regex  # noqa: E402
import wcwidth  # noqa: E402
from clip.model import CLIP, convert_weights  # noqa: E402
from clip.simple_tokenizer import SimpleTokenizer, basic_clean, whitespace_clean  # noqa: E402

assert clip.__file__.startswith(CLIP_ENV), clip.__file__
assert ftfy.__file__.startswith(CLIP_ENV), ftfy.__file__

torch.set_num_threads(1)

OUT_DIR = os.path.normpath(os.path.join(HERE, '..', 'Dalle2Sharp.Tests', 'Clip', 'Vectors'))
CLIP_COMMIT = 'd05afc436d78f1c48dc0dbf8e5980a9d471f35f6'
SOT, EOT = 49406, 49407
# torchvision Normalize of clip.clip._transform (the last transform of clip.load's preprocess)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Widths of 128 give 2 heads of 64 in both transformers: clip.model.build_model derives vision_heads and
# transformer_heads as width // 64 from the state dict, so transformer_heads here must equal width // 64 for the
# model built here and the one clip.load rebuilds from the archive to be the same.
TEXT_SIDE = dict(context_length=77, vocab_size=49408, transformer_width=128, transformer_heads=2,
                 transformer_layers=2)
ARCHS = {
    'ViT-Tiny': dict(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=128, vision_patch_size=8,
                     **TEXT_SIDE),
}
SEEDS = {'ViT-Tiny': 1234}
IMAGE_SEEDS = {'ViT-Tiny': 11}

LONG_CAPTION = ('a very long caption that keeps going and going, describing a red fox jumping over the lazy '
                'brown dog beside a river at sunset while seventeen purple elephants juggle 1234567890 shiny '
                'apples, oranges, pears and bananas under a sky full of stars, comets, planets, moons and '
                'galaxies, until the tokenizer has to truncate it well past seventy-seven tokens in total.')
CLIP_CAPTIONS = [
    'a photo of a cat',
    'Ünïcödé ☃ emoji 🎉 &amp; entities',
    LONG_CAPTION,
    # BPE piece '!' (no </w>) is token id 0, the padding id: '!~' encodes to [0, 349]. DALLE2-pytorch's adapter
    # masks such positions out of text_encodings although they are real tokens ('!' alone is 256, '!!' is 748)
    'wow!~ a dog!! on a sunny day',
]

TOKENIZER_CAPTIONS = [
    'a photo of a cat',
    'A Photo Of A CAT',
    'Hello, World!',
    '',
    '   ',
    '\t\n  \r\n',
    'multiple   spaces\tand\ttabs\nand\n\nnewlines\r\nand crlf',
    "it's we'll I'd they've you're I'm can't",
    "IT'S WE'LL I'D THEY'VE",
    'it’s “curly” ‘quotes’ and dashes — –',
    'numbers 1234.5 and 3,141,592 and -42 and 1e10',
    'café naïve résumé façade Ünïcödé',
    'cafe\u0301 (decomposed e + combining acute)',
    'cafÃ© Ã¼ber naÃ¯ve',
    'â€œquotedâ€\u009d and donâ€™t',
    'Ünïcödé ☃ emoji 🎉 &amp; entities',
    'html &amp; &lt;b&gt;bold&lt;/b&gt; &#39;single&#39; &quot;double&quot; &#x1F600; &nbsp;x',
    'double escaped &amp;amp; &amp;lt;3',
    'fullwidth ＡＢＣ ｆｕｌｌｗｉｄｔｈ １２３',
    'ligatures ﬁne ﬂow ﬀ',
    '日本語のテキストです',
    '中文字符测试',
    '한국어 텍스트',
    'emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️',
    'русский текст',
    'ελληνικά ΟΔΟΣ',
    'İstanbul ß ẞ ǅ',
    'हिन्दी पाठ',
    'العربية',
    'nbsp\u00a0thin\u2009ideographic\u3000zwsp\u200bzwj\u200dend',
    'control\x00chars\x07and\x7fdel \ufeffbom',
    'soft\u00adhyphen',
    'literal <|endoftext|> and <|startoftext|> tokens',
    'punctuation!!! ??? ... --- *** $$$ %%% @@@ ### ^^^',
    'token id zero: !~ wow!~ and ! alone',
    'email test@example.com url https://example.com/a?b=c&d=e',
    'snake_case camelCase kebab-case PascalCase',
    'ǅemo Ǳ ﬃ ℌ ① ²',
    'mixed 中文 english 日本 123 ！？',
    "a dog's ball, the dogs' balls",
    LONG_CAPTION,
    ' '.join(['word'] * 100),
    '1234567890' * 10,
    '🎉' * 80,
]

# ----------------------------------------------------------------------------- helpers


def f32_list(t):
    """float32 values as Python floats whose repr is numpy's shortest round-trip float32 string."""
    a = t.detach().to(torch.float32).contiguous().numpy().reshape(-1)
    out = []
    for v in a:
        s = repr(float(str(v)))  # str(np.float32) is the shortest string that round-trips to that float32
        x = float(s)
        assert np.float32(x) == v or (np.isnan(v) and np.isnan(x)), (v, s)
        assert np.isfinite(v), 'non-finite value in reference output'
        out.append(x)
    return out


def tensor_json(t):
    t = t.detach()
    return {'shape': list(t.shape), 'values': f32_list(t)}


def int_list(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def build_tiny(name, keep_ids):
    """openai/CLIP's CLIP class, seeded; returns (fp32 model with fp16-rounded weights, model as archived)."""
    cfg = ARCHS[name]
    torch.manual_seed(SEEDS[name])
    model = CLIP(**cfg)  # the constructor runs initialize_parameters() (CLIP's own init)
    g = torch.Generator().manual_seed(SEEDS[name] + 1)

    def rn(*shape):
        return torch.randn(*shape, generator=g)

    with torch.no_grad():
        # initialize_parameters leaves biases at 0 and norms at 1/0; give them seeded values so every tensor of
        # the archive matters.
        for mod in model.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1 + 0.1 * rn(*mod.weight.shape))
                mod.bias.copy_(0.05 * rn(*mod.bias.shape))
            elif isinstance(mod, (nn.Linear, nn.MultiheadAttention)):
                for pn in ('bias', 'in_proj_bias'):
                    b = getattr(mod, pn, None)
                    if b is not None:
                        b.copy_(0.02 * rn(*b.shape))
        # zero all token embeddings except those used by CLIP_CAPTIONS (+ sot/eot/0): keeps the archive compressible
        keep = torch.zeros(cfg['vocab_size'], dtype=torch.bool)
        keep[sorted(keep_ids)] = True
        model.token_embedding.weight[~keep] = 0

    # released archives carry these three as int64 buffers of the top-level module (build_model deletes them)
    del model.context_length, model.vocab_size
    model.register_buffer('input_resolution', torch.tensor(cfg['image_resolution']))
    model.register_buffer('context_length', torch.tensor(cfg['context_length']))
    model.register_buffer('vocab_size', torch.tensor(cfg['vocab_size']))
    model.eval()

    # round to what the fp16 archive holds, so the fp32 model that is traced equals clip.load(jit=False).float()
    convert_weights(model)
    model.float()
    return model


def check_archive_dtypes(sd):
    dtypes = {}
    for k, v in sd.items():
        dtypes.setdefault(str(v.dtype).replace('torch.', ''), []).append(k)
    return dtypes


def archive_layout(path):
    with zipfile.ZipFile(path) as z:
        return [[i.filename, i.file_size] for i in z.infolist()]


def adapter_embed_text(model, text, max_text_len):
    """DALLE2-pytorch 1.15.6 OpenAIClipAdapter.embed_text, step by step (forward hook on ln_final)."""
    store = {}
    handle = model.ln_final.register_forward_hook(lambda _m, _i, o: store.__setitem__('enc', o))
    try:
        text = text[..., :max_text_len]
        is_eos_id = (text == EOT)
        text_mask_excluding_eos = is_eos_id.cumsum(dim=-1) == 0
        text_mask = torch.nn.functional.pad(text_mask_excluding_eos, (1, -1), value=True)
        text_mask = text_mask & (text != 0)
        text_embed = model.encode_text(text)
        text_encodings = store['enc'].masked_fill(~text_mask[..., None], 0.)
    finally:
        handle.remove()
    return torch.nn.functional.normalize(text_embed.float(), dim=-1), text_encodings.float(), text_mask, text_embed


def normalize_image(raw):
    mean = torch.as_tensor(CLIP_MEAN, dtype=raw.dtype)[:, None, None]
    std = torch.as_tensor(CLIP_STD, dtype=raw.dtype)[:, None, None]
    return raw.sub(mean).div(std)  # what torchvision.transforms.Normalize does on a float tensor


def upstream_adapter():
    """The real dalle2_pytorch.OpenAIClipAdapter class, or None when DALLE2-pytorch sources are not laid out."""
    srcs = [os.path.join(UPSTREAM, p) for p in ('dalle2', 'einops', 'ema', 'rotary', 'resize_right')]
    if not all(os.path.isdir(p) for p in srcs):
        return None, 'skipped: DALLE2-pytorch sources not found under %s' % UPSTREAM
    # appended, so the real clip/ftfy/regex/torchvision/tqdm/packaging (already imported) win over the stubs
    sys.path.extend(srcs + [os.path.join(HERE, 'stubs')])
    from dalle2_pytorch.dalle2_pytorch import OpenAIClipAdapter
    from dalle2_pytorch.version import __version__
    assert __version__ == '1.15.6', __version__
    return OpenAIClipAdapter, 'checked: dalle2_pytorch %s OpenAIClipAdapter(name=<archive>) gives identical ' \
                              'embed_text / embed_image tensors (torch.equal)' % __version__


# ----------------------------------------------------------------------------- CLIP models


def make_models():
    tok = SimpleTokenizer()
    tokens = clip.tokenize(CLIP_CAPTIONS, truncate=True)
    # rows kept in token_embedding: every id of the captions, sot/eot, and 0 (padding, and the '!' piece the 4th
    # caption uses)
    assert any(0 in tok.encode(c) for c in CLIP_CAPTIONS)
    keep_ids = set(int_list(tokens)) | {SOT, EOT, 0}
    adapter_cls, adapter_note = upstream_adapter()

    result = {}
    for name, cfg in ARCHS.items():
        assert isinstance(cfg['vision_layers'], int), 'only the VisionTransformer family is produced'
        assert cfg['vision_width'] // 64 == 2 and cfg['transformer_width'] // 64 == cfg['transformer_heads'] == 2
        model = build_tiny(name, keep_ids)
        assert model.visual.transformer.resblocks[0].attn.num_heads == 2
        assert model.transformer.resblocks[0].attn.num_heads == 2
        R = cfg['image_resolution']
        torch.manual_seed(IMAGE_SEEDS[name])
        raw = torch.rand(2, 3, R, R)
        pixels = normalize_image(raw)

        with torch.no_grad():
            ref_img = model.encode_image(pixels)
            ref_txt = model.encode_text(tokens)

        # trace like the released files: encode_image, encode_text, then forward (its submodule calls become
        # forward1 in the archive's code), on the fp32 model; then store the convert_weights set as float16
        traced = torch.jit.trace_module(
            model, {'encode_image': (pixels,), 'encode_text': (tokens,), 'forward': (pixels, tokens)})
        convert_weights(model)  # parameters are shared with the traced module
        sd = traced.state_dict()
        assert sd['visual.conv1.weight'].dtype == torch.float16, 'traced module does not share parameters'
        # The archive itself (27 MB: its float32 token embedding is mostly zeros) stays out of the repository;
        # the tests read it gzipped (1.7 MB) and unpack it into their output folder.
        path = os.path.join(tempfile.gettempdir(), name + '.pt')
        torch.jit.save(traced, path)
        with open(path, 'rb') as f, open(os.path.join(OUT_DIR, name + '.pt.gz'), 'wb') as out:
            with gzip.GzipFile(filename='', fileobj=out, mode='wb', compresslevel=9, mtime=0) as packed:
                packed.write(f.read())

        # what the C# side must reproduce: openai/CLIP's own loader on the archive
        loaded, preprocess = clip.load(path, device='cpu', jit=False)
        assert loaded.dtype == torch.float32 and not loaded.training
        assert loaded.visual.transformer.resblocks[0].attn.num_heads == 2  # build_model: width // 64
        assert loaded.transformer.resblocks[0].attn.num_heads == 2
        assert preprocess.transforms[-1].mean == CLIP_MEAN and preprocess.transforms[-1].std == CLIP_STD
        with torch.no_grad():
            img = loaded.encode_image(pixels)
            txt = loaded.encode_text(tokens)
            logits_per_image, logits_per_text = loaded(pixels, tokens)
            a_text_embed, a_text_enc, a_text_mask, _ = adapter_embed_text(loaded, tokens, loaded.context_length)
            a_image_embed = torch.nn.functional.normalize(loaded.encode_image(normalize_image(raw)).float(), dim=-1)
        assert torch.equal(img, ref_img) and torch.equal(txt, ref_txt), 'clip.load(jit=False) != built model'
        assert torch.equal(normalize_image(raw), preprocess.transforms[-1](raw.clone()))

        # the TorchScript path too (clip.load(jit=True) patches devices/dtypes and calls .float() on CPU)
        jit_model, _ = clip.load(path, device='cpu', jit=True)
        assert jit_model.input_resolution.item() == R
        with torch.no_grad():
            j_img = jit_model.encode_image(pixels)
            j_txt = jit_model.encode_text(tokens)
            j_lpi, _ = jit_model(pixels, tokens)
        jit_diff = max((j_img - img).abs().max().item(), (j_txt - txt).abs().max().item(),
                       (j_lpi - logits_per_image).abs().max().item())
        assert jit_diff < 1e-4, jit_diff

        # sanity: outputs vary across inputs and are finite
        for t in (img, txt, logits_per_image, a_text_enc):
            assert torch.isfinite(t).all()
        assert (img[0] - img[1]).abs().max() > 1e-3
        assert min((txt[i] - txt[j]).abs().max().item() for i in range(len(txt)) for j in range(i)) > 1e-3

        # the id-0 quirk is exercised: a real '!' piece (id 0, before the eot) is masked out by the adapter
        assert any(not m and t == 0 and i < e for r, (mr, tr, e) in enumerate(
            zip(a_text_mask.tolist(), tokens.tolist(), tokens.argmax(dim=-1).tolist()))
            for i, (m, t) in enumerate(zip(mr, tr)))

        upstream_check = adapter_note
        if adapter_cls is not None:
            adapter = adapter_cls(name=path)
            with torch.no_grad():
                up_t = adapter.embed_text(tokens)
                up_i = adapter.embed_image(raw)
            assert torch.equal(up_t.text_embed, a_text_embed), 'adapter text_embed differs'
            assert torch.equal(up_t.text_encodings, a_text_enc), 'adapter text_encodings differs'
            assert torch.equal(up_i.image_embed, a_image_embed), 'adapter image_embed differs'
            assert up_i.image_encodings is None
            assert adapter.dim_latent == cfg['transformer_width']
            assert adapter.image_size == R and adapter.max_text_len == cfg['context_length']

        with open(path, 'rb') as fh:
            sha = hashlib.sha256(fh.read()).hexdigest()
        hp = dict(cfg)
        result[name] = {
            'about': 'clip.model.CLIP(**hyperparameters) with torch.manual_seed(%d) (CLIP.initialize_parameters), '
                     'then seeded LayerNorm/bias values, token_embedding rows zero except the ids of '
                     'the captions (+ sot/eot/0), convert_weights (fp16 rounding); saved with '
                     'torch.jit.trace_module(encode_image, encode_text, forward) + torch.jit.save. Every output '
                     'below comes from clip.load(archive, device="cpu", jit=False) (fp32), bit-identical to the '
                     'model before saving; clip.load(jit=True) agrees within %.2g.' % (SEEDS[name], jit_diff),
            'archive': name + '.pt',
            'archive_sha256': sha,
            'hyperparameters': hp,
            'derived': {
                'vision_heads': cfg['vision_width'] // 64,
                'transformer_heads_build_model': cfg['transformer_width'] // 64,
                'logit_scale': float(loaded.logit_scale.item()),
                'adapter_dim_latent': cfg['transformer_width'],
            },
            'token_embedding_nonzero_rows': sorted(keep_ids),
            'archive_tensors': [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in sd.items()],
            'archive_dtypes': {k: len(v) for k, v in check_archive_dtypes(sd).items()},
            'images': {
                'about': 'pixels_raw = (torch.manual_seed(%d), torch.rand(2, 3, %d, %d)); pixels = '
                         'Normalize(mean=%s, std=%s)(pixels_raw) is the tensor given to encode_image. '
                         'adapter_image_embed = OpenAIClipAdapter.embed_image(pixels_raw).image_embed = '
                         'l2norm(encode_image(Normalize(pixels_raw))) (resize is a no-op at this size; '
                         'image_encodings is None).' % (IMAGE_SEEDS[name], R, R, CLIP_MEAN, CLIP_STD),
                'seed': IMAGE_SEEDS[name],
                'pixels_raw': tensor_json(raw),
                'pixels': tensor_json(pixels),
                'encode_image': tensor_json(img),
                'adapter_image_embed': tensor_json(a_image_embed),
            },
            'texts': {
                'about': 'tokens = clip.tokenize(captions, truncate=True) (int32, 77 per caption); encode_text '
                         'takes the EOT (argmax id) position. adapter_* = DALLE2-pytorch 1.15.6 '
                         'OpenAIClipAdapter.embed_text(tokens): text = tokens[..., :context_length]; mask = '
                         'F.pad(cumsum(text == 49407) == 0, (1, -1), value=True) & (text != 0); text_embed = '
                         'l2norm(encode_text(text)); text_encodings = (output of ln_final, [batch, 77, '
                         'transformer_width], before .type(dtype) and the projection).masked_fill(~mask, 0). '
                         'Note: mask excludes every id 0 ("!"), not only padding.',
                'captions': CLIP_CAPTIONS,
                'tokens': [int_list(r) for r in tokens],
                'eot_index': int_list(tokens.argmax(dim=-1)),
                'encode_text': tensor_json(txt),
                'adapter_text_mask': [[bool(b) for b in r] for r in a_text_mask.tolist()],
                'adapter_text_embed': tensor_json(a_text_embed),
                'adapter_text_encodings': tensor_json(a_text_enc),
            },
            'forward': {
                'about': 'model(pixels, tokens): logits_per_image [2, n_captions] = exp(logit_scale) * '
                         'normalize(image) @ normalize(text).T; logits_per_text is its transpose',
                'logits_per_image': tensor_json(logits_per_image),
                'logits_per_text': tensor_json(logits_per_text),
            },
            'layout': archive_layout(path),
            'upstream_adapter_check': upstream_check,
        }
        print('%s: %s, %d bytes, jit diff %.3g, %s' % (name, path, os.path.getsize(path), jit_diff, upstream_check))
    return result


# ----------------------------------------------------------------------------- tokenizer


def make_tokenizer_vectors():
    tok = SimpleTokenizer()
    cases = []
    for text in TOKENIZER_CAPTIONS:
        ids = tok.encode(text)
        t77 = clip.tokenize(text, truncate=True)[0]
        try:
            clip.tokenize(text, truncate=False)
            too_long = False
        except RuntimeError:
            too_long = True
        assert too_long == (len(ids) + 2 > 77)
        cases.append({
            'text': text,
            'fixed': ftfy.fix_text(text),
            'cleaned': whitespace_clean(basic_clean(text)).lower(),
            'bpe': ids,
            'bpe_strings': [tok.decoder[i] for i in ids],
            'tokens77': int_list(t77),
            'too_long_without_truncate': too_long,
            'decoded': tok.decode(ids),
        })
    return {
        'about': 'openai/CLIP %s clip.simple_tokenizer: cleaned = whitespace_clean(basic_clean(text)).lower() '
                 '(basic_clean = ftfy.fix_text, html.unescape twice, strip; whitespace_clean = regex \\s+ -> " ", '
                 'strip); bpe = SimpleTokenizer().encode(text) (no sot/eot); tokens77 = clip.tokenize(text, '
                 'truncate=True)[0] (sot + bpe + eot, cut to 77 with the last set to eot, 0-padded); fixed = '
                 'ftfy.fix_text(text) alone; decoded = SimpleTokenizer().decode(bpe).' % CLIP_COMMIT,
        'clip_commit': CLIP_COMMIT,
        'ftfy_version': ftfy.__version__,
        'wcwidth_version': wcwidth.__version__,
        'regex_version': regex.__version__,
        'python_version': sys.version.split()[0],
        'unicode_version': __import__('unicodedata').unidata_version,
        'sot': SOT,
        'eot': EOT,
        'cases': cases,
    }


def dump(obj, name):
    path = os.path.join(OUT_DIR, name)
    with open(path, 'w', encoding='utf-8') as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1, allow_nan=False)
        fh.write('\n')
    print('%s: %d bytes' % (path, os.path.getsize(path)))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    models = make_models()
    dump({
        'about': 'Tiny CLIP models built with openai/CLIP %s (clip.model.CLIP) and their outputs, from '
                 'tests/reference/make_clip_vectors.py. Floats are float32 (shortest round-trip strings).'
                 % CLIP_COMMIT,
        'clip_commit': CLIP_COMMIT,
        'torch_version': torch.__version__,
        'ftfy_version': ftfy.__version__,
        'clip_mean': list(CLIP_MEAN),
        'clip_std': list(CLIP_STD),
        'models': models,
    }, 'clip_reference.json')
    dump(make_tokenizer_vectors(), 'tokenizer_reference.json')


if __name__ == '__main__':
    main()
