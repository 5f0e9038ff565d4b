using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Dalle2Sharp.Clip;

/// <summary>
/// The hyperparameters of a CLIP model, inferred from its weights' shapes as openai/CLIP's build_model
/// does, so any released size (ViT-B/32, B/16, L/14, L/14@336px) or a small stand-in loads.
/// </summary>
public sealed record ClipHyperparameters(
    int EmbedDim, int ImageResolution, int VisionLayers, int VisionWidth, int VisionPatchSize,
    int ContextLength, int VocabSize, int TransformerWidth, int TransformerHeads, int TransformerLayers)
{
    /// <summary>Width per attention head in every CLIP model (build_model: heads = width // 64).</summary>
    public const int HeadWidth = 64;

    public int VisionHeads => VisionWidth / HeadWidth;

    public static ClipHyperparameters Infer(IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        long[] Shape(string key) => weights.TryGetValue(key, out var t) ? t.shape
            : throw new UserInputException($"{source}: no {key} among the CLIP weights");
        if (!weights.ContainsKey("visual.proj"))
            throw new UserInputException($"{source}: a ModifiedResNet CLIP (RN50, RN101, RN50x4 …: no visual.proj); only the vision " +
                                         "transformer family (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px) is supported");
        var conv = Shape("visual.conv1.weight");
        int visionWidth = (int)conv[0], patch = (int)conv[^1];
        int grid = (int)Math.Round(Math.Sqrt(Shape("visual.positional_embedding")[0] - 1));
        int Layers(string prefix) => weights.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k[prefix.Length..].Split('.')[0]).Distinct().Count();
        int width = (int)Shape("ln_final.weight")[0];
        var hp = new ClipHyperparameters(
            EmbedDim: (int)Shape("text_projection")[1], ImageResolution: patch * grid, VisionLayers: Layers("visual.transformer.resblocks."),
            VisionWidth: visionWidth, VisionPatchSize: patch, ContextLength: (int)Shape("positional_embedding")[0],
            VocabSize: (int)Shape("token_embedding.weight")[0], TransformerWidth: width, TransformerHeads: width / HeadWidth,
            TransformerLayers: Layers("transformer.resblocks."));
        if (hp.TransformerHeads == 0 || hp.VisionHeads == 0 || width % HeadWidth != 0 || visionWidth % HeadWidth != 0)
            throw new UserInputException($"{source}: CLIP widths must be multiples of {HeadWidth} (text {width}, vision {visionWidth})");
        return hp;
    }
}

/// <summary>LayerNorm computed in float32 whatever the input's dtype (CLIP's LayerNorm subclass); keys weight and bias.</summary>
internal sealed class Fp32LayerNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>torch.nn.LayerNorm's default epsilon, which CLIP keeps.</summary>
    private const double Epsilon = 1e-5;
    private readonly Parameter weight;
    private readonly Parameter bias;

    public Fp32LayerNorm(long width) : base(nameof(Fp32LayerNorm))
    {
        weight = nn.Parameter(ones(width));
        bias = nn.Parameter(zeros(width));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        F.layer_norm(x.to(float32), [x.shape[^1]], weight.to(float32), bias.to(float32), Epsilon).to(x.dtype);
}

/// <summary>
/// nn.MultiheadAttention as CLIP uses it (self-attention, packed in_proj_weight / in_proj_bias,
/// out_proj), on batch-first tensors; an optional additive mask (the text transformer's causal mask).
/// </summary>
internal sealed class MultiheadSelfAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int _heads;

    public MultiheadSelfAttention(int width, int heads) : base(nameof(MultiheadSelfAttention))
    {
        _heads = heads;
        in_proj_weight = nn.Parameter(zeros(3 * width, width));
        in_proj_bias = nn.Parameter(zeros(3 * width));
        out_proj = nn.Linear(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        long b = x.shape[0], n = x.shape[1], width = x.shape[2], headWidth = width / _heads;
        var qkv = F.linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
        Tensor Heads(Tensor t) => t.view(b, n, _heads, headWidth).transpose(1, 2);
        var (q, k, v) = (Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]));
        // As torch's multi_head_attention_forward: q scaled before the product.
        var scores = matmul(q * Math.Pow(headWidth, -0.5), k.transpose(-2, -1));
        if (mask is not null) scores = scores + mask;
        var attended = matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, n, width);
        return out_proj.forward(attended);
    }
}

internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly bool _quickGelu;

    public Mlp(int width, bool quickGelu) : base(nameof(Mlp))
    {
        c_fc = nn.Linear(width, width * 4);
        c_proj = nn.Linear(width * 4, width);
        _quickGelu = quickGelu;
        RegisterComponents();
    }

    /// <summary>OpenAI's models use QuickGELU, x·σ(1.702x); open_clip's own use exact GELU.</summary>
    public override Tensor forward(Tensor x)
    {
        var h = c_fc.forward(x);
        return c_proj.forward(_quickGelu ? h * (h * 1.702).sigmoid() : F.gelu(h));
    }
}

internal sealed class ResidualAttentionBlock : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly MultiheadSelfAttention attn;
    private readonly Fp32LayerNorm ln_1;
    private readonly Mlp mlp;
    private readonly Fp32LayerNorm ln_2;

    public ResidualAttentionBlock(int width, int heads, bool quickGelu) : base(nameof(ResidualAttentionBlock))
    {
        attn = new MultiheadSelfAttention(width, heads);
        ln_1 = new Fp32LayerNorm(width);
        mlp = new Mlp(width, quickGelu);
        ln_2 = new Fp32LayerNorm(width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        x = x + attn.forward(ln_1.forward(x), mask);
        return x + mlp.forward(ln_2.forward(x));
    }
}

internal sealed class ClipTransformer : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<ResidualAttentionBlock> resblocks;

    public ClipTransformer(int width, int layers, int heads, bool quickGelu) : base(nameof(ClipTransformer))
    {
        resblocks = new ModuleList<ResidualAttentionBlock>(Enumerable.Range(0, layers)
            .Select(_ => new ResidualAttentionBlock(width, heads, quickGelu)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        // Each block in its own scope (one around the whole forward held 1.4 GB more at batch 32 for ViT-B/32).
        foreach (var block in resblocks) x = Models.BlockScope.Run(() => block.forward(x, mask));
        return x;
    }
}

/// <summary>CLIP's vision transformer: patches, a class token, positions, the transformer, ln_post and the projection.</summary>
internal sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly Fp32LayerNorm ln_pre;
    private readonly ClipTransformer transformer;
    private readonly Fp32LayerNorm ln_post;
    private readonly Parameter proj;

    public VisionTransformer(ClipHyperparameters hp, bool quickGelu) : base(nameof(VisionTransformer))
    {
        int grid = hp.ImageResolution / hp.VisionPatchSize;
        conv1 = nn.Conv2d(3, hp.VisionWidth, hp.VisionPatchSize, stride: hp.VisionPatchSize, bias: false);
        class_embedding = nn.Parameter(zeros(hp.VisionWidth));
        positional_embedding = nn.Parameter(zeros(grid * grid + 1, hp.VisionWidth));
        ln_pre = new Fp32LayerNorm(hp.VisionWidth);
        transformer = new ClipTransformer(hp.VisionWidth, hp.VisionLayers, hp.VisionHeads, quickGelu);
        ln_post = new Fp32LayerNorm(hp.VisionWidth);
        proj = nn.Parameter(zeros(hp.VisionWidth, hp.EmbedDim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor image)
    {
        var x = conv1.forward(image);                                   // [B, width, grid, grid]
        x = x.flatten(2).transpose(1, 2);                                // [B, grid², width]
        var cls = class_embedding.to(x.dtype).expand(x.shape[0], 1, x.shape[2]);
        x = cat([cls, x], 1) + positional_embedding.to(x.dtype);
        x = transformer.forward(ln_pre.forward(x), null);
        return matmul(ln_post.forward(x[.., 0, ..]), proj);
    }
}

/// <summary>
/// OpenAI's CLIP (openai/CLIP model.py), module for module with its state_dict names: encode_image
/// through the vision transformer, encode_text through the causal text transformer (the EOT token's
/// state, projected), and the per-token states DALLE2-pytorch conditions on.
/// </summary>
public sealed class ClipModel : nn.Module
{
    private readonly VisionTransformer visual;
    private readonly ClipTransformer transformer;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly Fp32LayerNorm ln_final;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;

    public ClipHyperparameters Hyperparameters { get; }

    public ClipModel(ClipHyperparameters hp, bool quickGelu = true) : base(nameof(ClipModel))
    {
        Hyperparameters = hp;
        visual = new VisionTransformer(hp, quickGelu);
        transformer = new ClipTransformer(hp.TransformerWidth, hp.TransformerLayers, hp.TransformerHeads, quickGelu);
        token_embedding = nn.Embedding(hp.VocabSize, hp.TransformerWidth);
        positional_embedding = nn.Parameter(zeros(hp.ContextLength, hp.TransformerWidth));
        ln_final = new Fp32LayerNorm(hp.TransformerWidth);
        text_projection = nn.Parameter(zeros(hp.TransformerWidth, hp.EmbedDim));
        logit_scale = nn.Parameter(tensor(0f));   // 0-dim, as openai/CLIP's ones([]) * log(1 / 0.07)
        RegisterComponents();
    }

    public int ImageResolution => Hyperparameters.ImageResolution;
    public int ContextLength => Hyperparameters.ContextLength;

    /// <summary>Images normalised as CLIP expects, [B, 3, R, R] → [B, embed_dim] (not normalised).</summary>
    public Tensor EncodeImage(Tensor image) => visual.forward(image.to(visual.parameters().First().dtype));

    /// <summary>Token ids [B, L ≤ context] → (the EOT states projected [B, embed_dim], the per-token states after ln_final [B, L, width]).</summary>
    public (Tensor TextEmbed, Tensor TokenStates) EncodeTextWithStates(Tensor text)
    {
        long n = text.shape[1];
        var x = token_embedding.forward(text) + positional_embedding[..(int)n];
        // build_attention_mask: −inf above the diagonal (made here: in openai/CLIP it is neither parameter nor buffer).
        x = transformer.forward(x, full(n, n, float.NegativeInfinity, dtype: x.dtype, device: x.device).triu(1));
        x = ln_final.forward(x);
        // The end-of-text token has the highest id: its position is the argmax, as openai/CLIP picks it.
        var eot = x[arange(x.shape[0], device: x.device), text.argmax(-1)];
        return (matmul(eot, text_projection), x);
    }

    public Tensor EncodeText(Tensor text) => EncodeTextWithStates(text).TextEmbed;
}
