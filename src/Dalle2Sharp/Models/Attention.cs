using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Models;

/// <summary>
/// Cross-attention of image positions on cond tokens with a learned null key/value. Upstream's
/// resnet blocks always build it with 8 heads of 64 (whatever attn_heads says).
/// </summary>
public sealed class CrossAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Parameter null_kv;
    private readonly GainLayerNorm norm;
    private readonly Linear to_q;
    private readonly Linear to_kv;
    private readonly Sequential to_out;
    private readonly long heads, dimHead;
    private readonly bool cosineSim;
    private readonly double scale;

    public CrossAttention(long dim, long contextDim, long dimHead = 64, long heads = 8, bool cosineSim = false, double cosineSimScale = 16)
        : base(nameof(CrossAttention))
    {
        this.heads = heads;
        this.dimHead = dimHead;
        this.cosineSim = cosineSim;
        scale = cosineSim ? cosineSimScale : Math.Pow(dimHead, -0.5);
        long inner = dimHead * heads;
        null_kv = nn.Parameter(randn(2, dimHead));
        norm = new GainLayerNorm(dim);
        to_q = nn.Linear(dim, inner, hasBias: false);
        to_kv = nn.Linear(contextDim, inner * 2, hasBias: false);
        to_out = nn.Sequential(nn.Linear(inner, dim, hasBias: false), new GainLayerNorm(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor context)
    {
        long b = x.shape[0], n = x.shape[1];
        x = norm.forward(x);
        var q = SplitHeads(to_q.forward(x));
        var kv = to_kv.forward(context).chunk(2, -1);
        var k = SplitHeads(kv[0]);
        var v = SplitHeads(kv[1]);
        var nullK = null_kv[0].expand(b, heads, 1, dimHead);
        var nullV = null_kv[1].expand(b, heads, 1, dimHead);
        k = cat([nullK, k], -2);
        v = cat([nullV, v], -2);
        var output = Attend(q, k, v, cosineSim, scale).transpose(1, 2).reshape(b, n, heads * dimHead);
        return to_out.forward(output);
    }

    /// <summary>
    /// softmax(scale · q·kᵀ)·v (upstream multiplies q and k each by √scale, after l2-normalising them for cosine
    /// similarity); the softmax runs in float32. k and v may have a head axis of 1 (shared by all heads).
    /// <para>
    /// Computed by libtorch's fused scaled-dot-product attention (on CPU a blockwise flash-attention kernel: the
    /// [n, n] similarity matrix is never stored, forward or backward), which computes softmax(q·kᵀ/√d)·v with a
    /// float32 softmax: q is pre-multiplied by scale·√d. Shared keys and values are attended by folding the heads
    /// into the query rows (each row is independent), so they are never copied per head. Same math as upstream's
    /// einsum–softmax–einsum; only the summation order differs (max |Δ| in the fidelity tests' tolerance).
    /// </para>
    /// </summary>
    internal static Tensor Attend(Tensor q, Tensor k, Tensor v, bool cosineSim, double scale)
    {
        if (cosineSim)
        {
            q = nn.functional.normalize(q, dim: -1);
            k = nn.functional.normalize(k, dim: -1);
        }
        long b = q.shape[0], heads = q.shape[1], n = q.shape[2], d = q.shape[3];
        var scaled = q * (scale * Math.Sqrt(d));
        bool sharedKeys = k.shape[1] == 1 && heads > 1;
        if (sharedKeys) scaled = scaled.reshape(b, 1, heads * n, d);
        var output = nn.functional.scaled_dot_product_attention(scaled, k, v);
        return sharedKeys ? output.reshape(b, heads, n, d) : output;
    }

    private Tensor SplitHeads(Tensor t) => t.reshape(t.shape[0], t.shape[1], heads, dimHead).transpose(1, 2);
}

/// <summary>
/// Multi-query self-attention (one shared key/value head) with a learned null key/value.
/// Reproduces upstream's double scaling: logits are scaled by 1/dim_head, not 1/√dim_head,
/// because q is multiplied by the scale and then q and k again by its square root.
/// </summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    private readonly Parameter null_kv;
    private readonly GainLayerNorm norm;
    private readonly Linear to_q;
    private readonly Linear to_kv;
    private readonly Sequential to_out;
    private readonly long heads, dimHead;
    private readonly bool cosineSim;
    private readonly double scale;

    public Attention(long dim, long dimHead = 64, long heads = 8, bool cosineSim = false, double cosineSimScale = 16) : base(nameof(Attention))
    {
        this.heads = heads;
        this.dimHead = dimHead;
        this.cosineSim = cosineSim;
        scale = cosineSim ? cosineSimScale : Math.Pow(dimHead, -0.5);
        long inner = dimHead * heads;
        null_kv = nn.Parameter(randn(2, dimHead));
        norm = new GainLayerNorm(dim);
        to_q = nn.Linear(dim, inner, hasBias: false);
        to_kv = nn.Linear(dim, dimHead * 2, hasBias: false);
        to_out = nn.Sequential(nn.Linear(inner, dim, hasBias: false), new GainLayerNorm(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1];
        x = norm.forward(x);
        var q = to_q.forward(x).reshape(b, n, heads, dimHead).transpose(1, 2) * scale;
        var kv = to_kv.forward(x).chunk(2, -1);
        var k = cat([null_kv[0].expand(b, 1, dimHead), kv[0]], -2);
        var v = cat([null_kv[1].expand(b, 1, dimHead), kv[1]], -2);
        // k and v have no head axis: every head attends to the same keys and values.
        var output = CrossAttention.Attend(q, k.unsqueeze(1), v.unsqueeze(1), cosineSim, scale).transpose(1, 2).reshape(b, n, heads * dimHead);
        return to_out.forward(output);
    }
}

/// <summary>Linear attention over image positions (used with sparse_attn on stages without full attention).</summary>
public sealed class LinearAttention : nn.Module<Tensor, Tensor>
{
    private readonly ChanLayerNorm norm;
    private readonly Conv2d to_qkv;
    private readonly Sequential to_out;
    private readonly long heads, dimHead;

    public LinearAttention(long dim, long dimHead = 32, long heads = 8) : base(nameof(LinearAttention))
    {
        this.heads = heads;
        this.dimHead = dimHead;
        long inner = dimHead * heads;
        norm = new ChanLayerNorm(dim);
        to_qkv = nn.Conv2d(dim, inner * 3, 1, bias: false);
        to_out = nn.Sequential(nn.Conv2d(inner, dim, 1, bias: false), new ChanLayerNorm(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor fmap)
    {
        long b = fmap.shape[0], x = fmap.shape[2], y = fmap.shape[3], seqLen = x * y;
        fmap = norm.forward(fmap);
        var qkv = to_qkv.forward(fmap).chunk(3, 1);
        Tensor ToSeq(Tensor t) => t.reshape(b * heads, dimHead, seqLen).transpose(1, 2);
        var q = ToSeq(qkv[0]).softmax(-1) * Math.Pow(dimHead, -0.5);
        var k = ToSeq(qkv[1]).softmax(-2) / Math.Sqrt(seqLen);
        var v = nn.functional.normalize(ToSeq(qkv[2]), dim: -1) / Math.Sqrt(seqLen);
        var context = matmul(k.transpose(1, 2), v);
        var output = matmul(q, context);
        output = output.transpose(1, 2).reshape(b, heads * dimHead, x, y);
        return to_out.forward(nn.functional.gelu(output));
    }
}
