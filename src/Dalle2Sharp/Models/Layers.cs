using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Models;

// Building blocks of DALLE2-pytorch's Unet. Field names are the PyTorch attribute names, so that
// state_dict keys match upstream's checkpoints exactly (e.g. "downs.0.1.block1.project.weight").

/// <summary>LayerNorm over the last dim with a gain `g` and no bias (upstream's own LayerNorm).</summary>
public sealed class GainLayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter g;

    public GainLayerNorm(long dim) : base("LayerNorm")
    {
        g = nn.Parameter(ones(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dtype == ScalarType.BFloat16) return LowPrecision.InFloat32(forward, x);
        double eps = x.dtype == ScalarType.Float32 ? 1e-5 : 1e-3;
        var (variance, mean) = var_mean(x, -1, unbiased: false, keepdim: true);
        return (x - mean) * (variance + eps).rsqrt() * g.to(x.dtype);
    }
}

/// <summary>The same normalisation over the channel dim of an image; `g` has shape [1, C, 1, 1].</summary>
public sealed class ChanLayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter g;

    public ChanLayerNorm(long dim) : base(nameof(ChanLayerNorm))
    {
        g = nn.Parameter(ones(1, dim, 1, 1));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dtype == ScalarType.BFloat16) return LowPrecision.InFloat32(forward, x);
        double eps = x.dtype == ScalarType.Float32 ? 1e-5 : 1e-3;
        var (variance, mean) = var_mean(x, 1, unbiased: false, keepdim: true);
        return (x - mean) * (variance + eps).rsqrt() * g.to(x.dtype);
    }
}

/// <summary>
/// Sinusoidal embedding of a (float) time: [sin(t·f), cos(t·f)], f_j = exp(−j·ln(10⁴)/(half−1)); always computed in
/// float32 (t·f reaches 10³: bfloat16's 8-bit mantissa would lose the phase), then given in <see cref="OutputType"/>.
/// </summary>
public sealed class SinusoidalPosEmb(long dim) : nn.Module<Tensor, Tensor>(nameof(SinusoidalPosEmb))
{
    public ScalarType OutputType { get; set; } = ScalarType.Float32;

    public override Tensor forward(Tensor t)
    {
        long half = dim / 2;
        double step = Math.Log(10000) / (half - 1);
        var freqs = exp(arange(half, dtype: ScalarType.Float32, device: t.device) * -step);
        var args = t.to(ScalarType.Float32).unsqueeze(-1) * freqs.unsqueeze(0);
        var embedding = cat([args.sin(), args.cos()], -1);
        return OutputType == ScalarType.Float32 ? embedding : embedding.to(OutputType);
    }
}

/// <summary>
/// The mixed-precision rule (train.amp) for what must not run in bfloat16: normalisations compute their statistics in
/// float32 and hand the result back in the input's type, as PyTorch's autocast does for layer_norm.
/// </summary>
public static class LowPrecision
{
    public static Tensor InFloat32(Func<Tensor, Tensor> op, Tensor x) => op(x.to(ScalarType.Float32)).to(x.dtype);
}

/// <summary>A 3×3 conv whose kernel is standardised per output filter before use (weight standardisation).</summary>
public sealed class WeightStandardizedConv2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;

    public WeightStandardizedConv2d(long inChannels, long outChannels) : base("Conv2d")
    {
        using var reference = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
        weight = nn.Parameter(reference.weight!.detach().clone());
        bias = nn.Parameter(reference.bias!.detach().clone());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        double eps = x.dtype == ScalarType.Float32 ? 1e-5 : 1e-3;
        var (variance, mean) = var_mean(weight, [1, 2, 3], unbiased: false, keepdim: true);
        var standardized = (weight - mean) * (variance + eps).rsqrt();
        return nn.functional.conv2d(x, standardized, bias, padding: [1, 1]);
    }
}

/// <summary>3×3 conv → GroupNorm → optional FiLM (scale, shift) → SiLU.</summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> project;
    private readonly GroupNorm norm;

    public Block(long dim, long dimOut, long groups = 8, bool weightStandardization = false) : base(nameof(Block))
    {
        project = weightStandardization ? new WeightStandardizedConv2d(dim, dimOut) : nn.Conv2d(dim, dimOut, 3, padding: 1);
        norm = Init.GroupNorm(groups, dimOut);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => forward(x, null, null);

    public Tensor forward(Tensor x, Tensor? scale, Tensor? shift)
    {
        x = norm.forward(project.forward(x));
        if (scale is not null && shift is not null) x = x * (scale + 1) + shift;
        return nn.functional.silu(x);
    }
}

/// <summary>Two Blocks with time FiLM after the first, optional cross-attention on cond tokens, and a residual.</summary>
public sealed class ResnetBlock : nn.Module
{
    private readonly Sequential? time_mlp;
    private readonly CrossAttention? cross_attn;
    private readonly Block block1;
    private readonly Block block2;
    private readonly nn.Module<Tensor, Tensor> res_conv;

    public ResnetBlock(long dim, long dimOut, long? condDim = null, long? timeCondDim = null, long groups = 8,
                       bool weightStandardization = false, bool cosineSimCrossAttn = false) : base(nameof(ResnetBlock))
    {
        if (timeCondDim is { } tcd) time_mlp = nn.Sequential(nn.SiLU(), nn.Linear(tcd, dimOut * 2));
        if (condDim is { } cd) cross_attn = new CrossAttention(dimOut, cd, cosineSim: cosineSimCrossAttn);
        block1 = new Block(dim, dimOut, groups, weightStandardization);
        block2 = new Block(dimOut, dimOut, groups, weightStandardization);
        res_conv = dim != dimOut ? nn.Conv2d(dim, dimOut, 1) : nn.Identity();
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor? time = null, Tensor? cond = null)
    {
        Tensor? scale = null, shift = null;
        if (time_mlp is not null && time is not null)
        {
            var chunks = time_mlp.forward(time).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
            (scale, shift) = (chunks[0], chunks[1]);
        }
        var h = block1.forward(x, scale, shift);
        if (cross_attn is not null)
        {
            if (cond is null) throw new ArgumentException("this resnet block cross-attends and needs cond tokens");
            long b = h.shape[0], c = h.shape[1], hh = h.shape[2], ww = h.shape[3];
            var seq = h.flatten(2).transpose(1, 2);
            seq = cross_attn.forward(seq, cond) + seq;
            h = seq.transpose(1, 2).reshape(b, c, hh, ww);
        }
        h = block2.forward(h);
        return h + res_conv.forward(x);
    }
}

/// <summary>Convs of several kernel sizes whose outputs are concatenated (widths halve per kernel, the largest takes the rest).</summary>
public sealed class CrossEmbedLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Conv2d> convs = new();

    public CrossEmbedLayer(long dimIn, IEnumerable<int> kernelSizes, long dimOut, long stride = 2) : base(nameof(CrossEmbedLayer))
    {
        var kernels = kernelSizes.Order().ToArray();
        var widths = Enumerable.Range(1, kernels.Length - 1).Select(i => (long)(dimOut / Math.Pow(2, i))).ToList();
        widths.Add(dimOut - widths.Sum());
        for (int i = 0; i < kernels.Length; i++)
            convs.Add(nn.Conv2d(dimIn, widths[i], kernels[i], stride: stride, padding: (kernels[i] - stride) / 2));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => cat(convs.Select(c => c.forward(x)).ToArray(), 1);
}

/// <summary>Pixel-unshuffle by 2 (channel order c, s1, s2) then a 1×1 conv; the conv is index 1 as upstream.</summary>
public static class Downsample
{
    public static Sequential Create(long dim, long dimOut) => nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(dim * 4, dimOut, 1));
}

/// <summary>1×1 conv to 4× channels, SiLU, PixelShuffle(2), with ICNR init (each filter repeated 4 times, zero bias).</summary>
public sealed class PixelShuffleUpsample : nn.Module<Tensor, Tensor>
{
    private readonly Sequential net;

    public PixelShuffleUpsample(long dim, long dimOut) : base(nameof(PixelShuffleUpsample))
    {
        var conv = nn.Conv2d(dim, dimOut * 4, 1);
        using (no_grad())
        {
            var kernel = empty(dimOut, dim, 1, 1);
            nn.init.kaiming_uniform_(kernel);
            conv.weight!.copy_(kernel.repeat_interleave(4, 0));
            conv.bias!.zero_();
        }
        net = nn.Sequential(conv, nn.SiLU(), nn.PixelShuffle(2));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => net.forward(x);
}

public static class NearestUpsample
{
    public static Sequential Create(long dim, long dimOut) =>
        nn.Sequential(nn.Upsample(scale_factor: [2.0, 2.0], mode: UpsampleMode.Nearest), nn.Conv2d(dim, dimOut, 3, padding: 1));
}

/// <summary>x + fn(x).</summary>
public sealed class Residual : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> fn;

    public Residual(nn.Module<Tensor, Tensor> inner) : base(nameof(Residual))
    {
        fn = inner;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fn.forward(x) + x;
}

/// <summary>Runs a sequence module on an image: [b, c, h, w] → [b, h·w, c] → back.</summary>
public sealed class RearrangeToSequence : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> fn;

    public RearrangeToSequence(nn.Module<Tensor, Tensor> inner) : base(nameof(RearrangeToSequence))
    {
        fn = inner;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var seq = fn.forward(x.flatten(2).transpose(1, 2));
        return seq.transpose(1, 2).reshape(b, c, h, w);
    }
}

/// <summary>Initialisation fixes for TorchSharp modules (see torchsharp-notes: GroupNorm leaves its affine parameters uninitialised).</summary>
public static class Init
{
    public static GroupNorm GroupNorm(long groups, long channels)
    {
        var norm = nn.GroupNorm(groups, channels, eps: 1e-5, affine: true);
        using (no_grad())
        {
            nn.init.ones_(norm.weight!);
            nn.init.zeros_(norm.bias!);
        }
        return norm;
    }
}

/// <summary>
/// Upstream's UpsampleCombiner (combine_upsample_fmaps): each up stage's feature map resized to the
/// final size with resize-right's cubic resize and projected to dim channels by a Block, concatenated
/// to the last feature map. Disabled, it holds no parameters and passes x through.
/// </summary>
public sealed class UpsampleCombiner : nn.Module
{
    private readonly ModuleList<Block> fmap_convs = new();

    public UpsampleCombiner(IReadOnlyList<long> dimIns, long dim) : base(nameof(UpsampleCombiner))
    {
        foreach (var dimIn in dimIns) fmap_convs.Add(new Block(dimIn, dim));
        ExtraChannels = dim * dimIns.Count;
        RegisterComponents();
    }

    public bool Enabled => fmap_convs.Count > 0;
    public long ExtraChannels { get; }

    public Tensor forward(Tensor x, IReadOnlyList<Tensor> fmaps)
    {
        if (!Enabled || fmaps.Count == 0) return x;
        int size = (int)x.shape[^1];
        var outs = fmaps.Zip(fmap_convs).Select(p => p.Second.forward(ResizeRight.Resize(p.First, size)));
        return cat([x, .. outs], 1);
    }
}

/// <summary>
/// Runs one block in its own dispose scope: the block's intermediates are released when it ends, as PyTorch releases
/// them when their last reference goes (autograd keeps what backward needs); only the result moves out. One scope
/// around a whole forward held every layer's intermediates at once (sampling peak RSS 2.6× upstream's).
/// </summary>
internal static class BlockScope
{
    public static Tensor Run(Func<Tensor> block)
    {
        using var scope = NewDisposeScope();
        return block().MoveToOuterDisposeScope();
    }
}
