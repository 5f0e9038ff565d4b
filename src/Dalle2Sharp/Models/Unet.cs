using Dalle2Sharp.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Models;

/// <summary>What a unet is conditioned on for one forward pass.</summary>
public sealed record UnetConditioning(
    Tensor? ImageEmbed = null,
    Tensor? TextEncodings = null,
    Tensor? LowresCondImg = null,
    Tensor? LowresNoiseLevel = null,
    Tensor? SelfCond = null);

/// <summary>
/// DALLE2-pytorch's decoder Unet: every constructor option of upstream, the same module tree and
/// state_dict keys (spec §2.3), and the same forward computation including its quirks (§2.4, §11).
/// </summary>
public sealed class Unet : nn.Module
{
    // Direct parameters first, as upstream registers them.
    private readonly Parameter null_image_embed;
    private readonly Parameter null_image_hiddens;
    private readonly Parameter null_text_embed;

    private readonly nn.Module<Tensor, Tensor> init_conv;
    private readonly Sequential to_time_hiddens;
    private readonly Sequential to_time_tokens;
    private readonly Sequential to_time_cond;
    private readonly nn.Module<Tensor, Tensor> image_to_tokens;
    private readonly Sequential? to_image_hiddens;
    private readonly LayerNorm norm_cond;
    private readonly LayerNorm norm_mid_cond;
    private readonly Linear? text_to_cond;
    private readonly Sequential? to_lowres_noise_cond;
    private readonly ResnetBlock? init_resnet_block;
    private readonly ModuleList<ModuleList<nn.Module>> downs = new();
    private readonly ModuleList<ModuleList<nn.Module>> ups = new();
    private readonly ResnetBlock mid_block1;
    private readonly RearrangeToSequence mid_attn;
    private readonly ResnetBlock mid_block2;
    private readonly UpsampleCombiner upsample_combiner;
    private readonly ResnetBlock final_resnet_block;
    private readonly Conv2d to_out;

    public UnetConfig Config { get; }
    public int Channels => Config.Channels;
    public int ChannelsOut => Config.ChannelsOut ?? Config.Channels;
    public bool LowresCond => Config.LowresCond;
    public bool SelfCond => Config.SelfCond;
    public bool CondOnImageEmbeds => Config.CondOnImageEmbeds;
    public bool CondOnTextEncodings => Config.CondOnTextEncodings;
    public bool HasLowresNoiseCond => to_lowres_noise_cond is not null;
    private readonly double skipScale;
    private readonly int maxTextLen, numImageTokens;
    private readonly long condDim;

    public Unet(UnetConfig c) : base(nameof(Unet))
    {
        Config = c;
        int stages = c.DimMults.Count;
        long dim = c.Dim;
        long initDim = c.InitDim ?? c.Dim;
        condDim = c.CondDim ?? c.Dim;
        long timeCondDim = dim * 4;
        maxTextLen = c.MaxTextLen;
        numImageTokens = c.NumImageTokens;
        skipScale = c.ScaleSkipConnection ? Math.Pow(2, -0.5) : 1.0;
        long initChannels = c.Channels * (1 + (c.LowresCond ? 1 : 0) + (c.SelfCond ? 1 : 0));

        init_conv = c.InitCrossEmbed
            ? new CrossEmbedLayer(initChannels, c.InitCrossEmbedKernelSizes, initDim, stride: 1)
            : nn.Conv2d(initChannels, initDim, c.InitConvKernelSize, padding: c.InitConvKernelSize / 2);

        to_time_hiddens = nn.Sequential(new SinusoidalPosEmb(dim), nn.Linear(dim, timeCondDim), nn.GELU());
        to_time_tokens = nn.Sequential(nn.Linear(timeCondDim, condDim * c.NumTimeTokens), new Tokens(c.NumTimeTokens));
        to_time_cond = nn.Sequential(nn.Linear(timeCondDim, timeCondDim));

        if (c.CondOnImageEmbeds && c.ImageEmbedDim is null) throw new ArgumentException("image_embed_dim is required for an image-conditioned unet");
        image_to_tokens = c.CondOnImageEmbeds && c.ImageEmbedDim != condDim
            ? nn.Sequential(nn.Linear(c.ImageEmbedDim!.Value, condDim * c.NumImageTokens), new Tokens(c.NumImageTokens))
            : nn.Identity();
        if (c.CondOnImageEmbeds && c.AddImageEmbedsToTime)
            to_image_hiddens = nn.Sequential(nn.Linear(c.ImageEmbedDim!.Value, timeCondDim), nn.GELU());

        norm_cond = nn.LayerNorm(condDim);
        norm_mid_cond = nn.LayerNorm(condDim);

        if (c.CondOnTextEncodings)
        {
            if (c.TextEmbedDim is null) throw new ArgumentException("text_embed_dim is required with cond_on_text_encodings");
            text_to_cond = nn.Linear(c.TextEmbedDim.Value, condDim);
        }
        if (c.LowresNoiseCond)
            to_lowres_noise_cond = nn.Sequential(new SinusoidalPosEmb(dim), nn.Linear(dim, timeCondDim), nn.GELU(),
                nn.Linear(timeCondDim, timeCondDim));

        null_image_embed = nn.Parameter(randn(1, c.NumImageTokens, condDim));
        null_image_hiddens = nn.Parameter(randn(1, timeCondDim));
        null_text_embed = nn.Parameter(randn(1, c.MaxTextLen, condDim));

        var groups = c.ResnetGroups.Expand(stages);
        var blocks = c.NumResnetBlocks.Expand(stages);
        var selfAttn = c.SelfAttn.Expand(stages);
        var dims = new List<long> { initDim };
        dims.AddRange(c.DimMults.Select(m => dim * m));
        bool ws = c.ResnetWeightStandardization;

        if (c.MemoryEfficient)
            init_resnet_block = new ResnetBlock(initDim, initDim, timeCondDim: timeCondDim, groups: groups[0], weightStandardization: ws);

        nn.Module<Tensor, Tensor> DownsampleLayer(long i, long o) =>
            c.CrossEmbedDownsample ? new CrossEmbedLayer(i, c.CrossEmbedDownsampleKernelSizes, o, stride: 2) : Downsample.Create(i, o);
        nn.Module<Tensor, Tensor> UpsampleLayer(long i, long o) =>
            c.PixelShuffleUpsample ? new PixelShuffleUpsample(i, o) : NearestUpsample.Create(i, o);
        nn.Module<Tensor, Tensor> AttentionLayer(int stage, long width) =>
            selfAttn[stage] ? new RearrangeToSequence(new Residual(new Attention(width, c.AttnDimHead, c.AttnHeads, c.CosineSimSelfAttn)))
            : c.SparseAttn ? new Residual(new LinearAttention(width, c.AttnDimHead, c.AttnHeads))
            : nn.Identity();

        var skipDims = new List<long>();
        for (int i = 0; i < stages; i++)
        {
            bool isFirst = i == 0, isLast = i == stages - 1;
            long dimIn = dims[i], dimOut = dims[i + 1];
            long layerCondDim = isFirst ? 0 : condDim;
            long current = c.MemoryEfficient ? dimOut : dimIn;
            skipDims.Add(current);
            var stage = new ModuleList<nn.Module>(
                c.MemoryEfficient ? DownsampleLayer(dimIn, dimOut) : nn.Identity(),
                new ResnetBlock(current, current, timeCondDim: timeCondDim, groups: groups[i], weightStandardization: ws),
                new ModuleList<ResnetBlock>(Enumerable.Range(0, blocks[i]).Select(_ =>
                    new ResnetBlock(current, current, layerCondDim > 0 ? layerCondDim : null, timeCondDim, groups[i], ws,
                        c.CosineSimCrossAttn)).ToArray()),
                AttentionLayer(i, current),
                !isLast && !c.MemoryEfficient ? DownsampleLayer(current, dimOut) : nn.Conv2d(current, dimOut, 1));
            downs.Add(stage);
        }

        long midDim = dims[^1];
        mid_block1 = new ResnetBlock(midDim, midDim, condDim, timeCondDim, groups[^1], ws, c.CosineSimCrossAttn);
        mid_attn = new RearrangeToSequence(new Residual(new Attention(midDim, c.AttnDimHead, c.AttnHeads, c.CosineSimSelfAttn)));
        mid_block2 = new ResnetBlock(midDim, midDim, condDim, timeCondDim, groups[^1], ws, c.CosineSimCrossAttn);

        for (int j = 0; j < stages; j++)
        {
            int i = stages - 1 - j;
            bool isLast = j == stages - 1;
            long dimIn = dims[i], dimOut = dims[i + 1], skip = skipDims[i];
            long? layerCondDim = isLast ? null : condDim;
            var stage = new ModuleList<nn.Module>(
                new ResnetBlock(dimOut + skip, dimOut, layerCondDim, timeCondDim, groups[i], ws, c.CosineSimCrossAttn),
                new ModuleList<ResnetBlock>(Enumerable.Range(0, blocks[i]).Select(_ =>
                    new ResnetBlock(dimOut + skip, dimOut, layerCondDim, timeCondDim, groups[i], ws, c.CosineSimCrossAttn)).ToArray()),
                AttentionLayer(i, dimOut),
                !isLast || c.MemoryEfficient ? UpsampleLayer(dimOut, dimIn) : nn.Identity());
            ups.Add(stage);
        }

        // Unet-squared's combiner: every up stage's output, resized to full size and projected to dim channels.
        upsample_combiner = new UpsampleCombiner(
            c.CombineUpsampleFmaps ? Enumerable.Range(0, stages).Select(j => dims[stages - j]).ToArray() : [], dim);
        final_resnet_block = new ResnetBlock(dim + upsample_combiner.ExtraChannels + dim, dim, timeCondDim: timeCondDim, groups: groups[0],
            weightStandardization: ws);
        long outDimIn = dim + (c.LowresCond ? c.Channels : 0);
        to_out = nn.Conv2d(outDimIn, ChannelsOut, c.FinalConvKernelSize, padding: c.FinalConvKernelSize / 2);
        using (no_grad())
        {
            to_out.weight!.zero_();
            to_out.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>
    /// One denoising prediction. Condition dropout (classifier-free guidance) draws its masks from
    /// <paramref name="generator"/> in upstream's order: image keep-mask, then text keep-mask.
    /// </summary>
    public Tensor forward(Tensor x, Tensor time, UnetConditioning cond, double imageCondDropProb = 0, double textCondDropProb = 0,
        Generator? generator = null)
    {
        // The generator draws nothing but these two masks (upstream's prob_mask_like, image first).
        var imageKeep = ProbMaskLike(x.shape[0], 1 - imageCondDropProb, x.device, generator);
        var textKeep = ProbMaskLike(x.shape[0], 1 - textCondDropProb, x.device, generator);
        return Forward(x, time, cond, imageKeep, textKeep);
    }

    /// <summary>
    /// The type the weights and activations are in: float32, or bfloat16 for train.amp (the optimizer keeps float32
    /// master weights; normalisations and the time embedding compute in float32). Inputs are cast to it and the
    /// prediction is returned in float32.
    /// </summary>
    public ScalarType ComputeType { get; private set; } = ScalarType.Float32;

    /// <summary>Casts the weights to <paramref name="type"/> (replacing the parameter objects) and computes in it.</summary>
    public void UseComputeType(ScalarType type)
    {
        this.to(type);
        ComputeType = type;
        foreach (var module in modules().OfType<SinusoidalPosEmb>()) module.OutputType = type;
    }

    /// <summary>The forward pass with the per-sample condition keep masks given ([b] bool each).</summary>
    private Tensor Forward(Tensor x, Tensor time, UnetConditioning cond, Tensor imageKeep, Tensor textKeep)
    {
        if (ComputeType != ScalarType.Float32)
        {
            Tensor? Cast(Tensor? t) => t is not null && t.is_floating_point() ? t.to(ComputeType) : t;
            x = x.to(ComputeType);
            cond = cond with
            {
                ImageEmbed = Cast(cond.ImageEmbed), TextEncodings = Cast(cond.TextEncodings), LowresCondImg = Cast(cond.LowresCondImg),
                SelfCond = Cast(cond.SelfCond),
            };
            return ForwardInComputeType(x, time, cond, imageKeep, textKeep).to(ScalarType.Float32);
        }
        return ForwardInComputeType(x, time, cond, imageKeep, textKeep);
    }

    private Tensor ForwardInComputeType(Tensor x, Tensor time, UnetConditioning cond, Tensor imageKeep, Tensor textKeep)
    {
        long b = x.shape[0];
        if (LowresCond && cond.LowresCondImg is null)
            throw new ArgumentException("this unet is conditioned on a low-resolution image; none was given");

        if (SelfCond) x = cat([x, cond.SelfCond ?? zeros_like(x)], 1);
        if (cond.LowresCondImg is not null) x = cat([x, cond.LowresCondImg], 1);

        x = init_conv.forward(x);
        var r = x.clone();

        var timeHiddens = to_time_hiddens.forward(time.to(ScalarType.Float32));
        var timeTokens = to_time_tokens.forward(timeHiddens);
        var t = to_time_cond.forward(timeHiddens);

        if (cond.LowresNoiseLevel is not null)
        {
            if (to_lowres_noise_cond is null) throw new ArgumentException("lowres_noise_cond must be set to condition on a low-res noise level");
            t = t + to_lowres_noise_cond.forward(cond.LowresNoiseLevel.to(ScalarType.Float32));
        }

        if (cond.ImageEmbed is not null && to_image_hiddens is not null)
        {
            var imageHiddens = to_image_hiddens.forward(cond.ImageEmbed);
            imageHiddens = where(imageKeep.unsqueeze(-1), imageHiddens, null_image_hiddens.to(imageHiddens.dtype));
            t = t + imageHiddens;
        }

        Tensor? imageTokens = null;
        if (CondOnImageEmbeds)
        {
            if (cond.ImageEmbed is null) throw new ArgumentException("this unet is conditioned on image embeddings; none were given");
            imageTokens = image_to_tokens.forward(cond.ImageEmbed);
            imageTokens = where(imageKeep.reshape(b, 1, 1), imageTokens, null_image_embed.to(imageTokens.dtype));
        }

        Tensor? textTokens = null;
        if (cond.TextEncodings is not null && CondOnTextEncodings)
        {
            var enc = cond.TextEncodings;
            var textMask = (enc != 0).any(-1);
            textTokens = text_to_cond!.forward(enc);
            textTokens = textTokens[.., ..Math.Min(maxTextLen, (int)textTokens.shape[1])];
            textMask = textMask[.., ..Math.Min(maxTextLen, (int)textMask.shape[1])];
            long remainder = maxTextLen - textTokens.shape[1];
            if (remainder > 0)
            {
                textTokens = nn.functional.pad(textTokens, [0, 0, 0, remainder]);
                textMask = nn.functional.pad(textMask, [0, remainder], value: 0).to(ScalarType.Bool);
            }
            var keep = (textMask & textKeep.unsqueeze(-1)).unsqueeze(-1);
            textTokens = where(keep, textTokens, null_text_embed.to(textTokens.dtype));
        }

        var c = imageTokens is null ? timeTokens : cat([timeTokens, imageTokens], -2);
        var midC = textTokens is null ? c : cat([c, textTokens], -2);
        c = norm_cond.forward(c);
        midC = norm_mid_cond.forward(midC);

        bool checkpoint = training && Config.CheckpointDuringTraining && is_grad_enabled();
        Tensor Res(ResnetBlock block, Tensor h, Tensor? cond2) => BlockScope.Run(() =>
            !checkpoint ? block.forward(h, t, cond2)
            : cond2 is null ? GradientCheckpoint.Run(i => block.forward(i[0], i[1]), h, t)
            : GradientCheckpoint.Run(i => block.forward(i[0], i[1], i[2]), h, t, cond2));
        Tensor Plain(nn.Module<Tensor, Tensor> module, Tensor h) => BlockScope.Run(() =>
            checkpoint && module is not Identity ? GradientCheckpoint.Run(i => module.forward(i[0]), h) : module.forward(h));

        if (init_resnet_block is not null) x = Res(init_resnet_block, x, null);

        var hiddens = new Stack<Tensor>();
        foreach (var stage in downs)
        {
            x = ((nn.Module<Tensor, Tensor>)stage[0]).forward(x);
            x = Res((ResnetBlock)stage[1], x, c);
            foreach (var block in (ModuleList<ResnetBlock>)stage[2])
            {
                x = Res(block, x, c);
                hiddens.Push(x);
            }
            x = Plain((nn.Module<Tensor, Tensor>)stage[3], x);
            hiddens.Push(x);
            x = ((nn.Module<Tensor, Tensor>)stage[4]).forward(x);
        }

        x = Res(mid_block1, x, midC);
        x = Plain(mid_attn, x);
        x = Res(mid_block2, x, midC);

        Tensor WithSkip(Tensor h) => cat([h, skipScale == 1.0 ? hiddens.Pop() : hiddens.Pop() * skipScale], 1);
        var upHiddens = new List<Tensor>();
        foreach (var stage in ups)
        {
            x = Res((ResnetBlock)stage[0], WithSkip(x), c);
            foreach (var block in (ModuleList<ResnetBlock>)stage[1])
                x = Res(block, WithSkip(x), c);
            x = Plain((nn.Module<Tensor, Tensor>)stage[2], x);
            if (upsample_combiner.Enabled) upHiddens.Add(x);
            x = ((nn.Module<Tensor, Tensor>)stage[3]).forward(x);
        }

        x = upsample_combiner.forward(x, upHiddens);
        x = cat([x, r], 1);
        x = Res(final_resnet_block, x, null);
        if (cond.LowresCondImg is not null) x = cat([x, cond.LowresCondImg], 1);
        return to_out.forward(x);
    }

    /// <summary>
    /// Classifier-free guidance: null + (cond − null)·scale, applied to the whole output as upstream does. Upstream runs
    /// the conditional forward, then one with every condition dropped; here both run as one forward of the doubled
    /// batch (first half keeps the conditions, second half drops them). Every layer acts per sample, so the results
    /// are upstream's up to the summation order larger kernels choose; fewer, larger kernels are faster.
    /// </summary>
    public Tensor ForwardWithCondScale(Tensor x, Tensor time, UnetConditioning cond, double condScale, Generator? generator = null)
    {
        if (condScale == 1.0) return forward(x, time, cond, generator: generator);
        long b = x.shape[0];
        var keep = cat([ones(b, dtype: ScalarType.Bool, device: x.device), zeros(b, dtype: ScalarType.Bool, device: x.device)]);
        static Tensor? Twice(Tensor? t) => t is null ? null : cat([t, t]);
        var doubled = new UnetConditioning(Twice(cond.ImageEmbed), Twice(cond.TextEncodings), Twice(cond.LowresCondImg),
            Twice(cond.LowresNoiseLevel), Twice(cond.SelfCond));
        var both = Forward(cat([x, x]), cat([time, time]), doubled, keep, keep);
        var (logits, nullLogits) = (both[..(int)b], both[(int)b..]);
        return nullLogits + (logits - nullLogits) * condScale;
    }


    /// <summary>upstream's prob_mask_like: all true at p = 1 and all false at p = 0 without drawing, else uniform &lt; p.</summary>
    private static Tensor ProbMaskLike(long b, double keepProb, Device device, Generator? generator) =>
        keepProb >= 1 ? ones(b, dtype: ScalarType.Bool, device: device)
        : keepProb <= 0 ? zeros(b, dtype: ScalarType.Bool, device: device)
        : rand(b, device: device, generator: generator) < keepProb;
}

/// <summary>[b, n·d] → [b, n, d] (einops 'b (n d) -> b n d').</summary>
internal sealed class Tokens(long count) : nn.Module<Tensor, Tensor>(nameof(Tokens))
{
    public override Tensor forward(Tensor x) => x.reshape(x.shape[0], count, -1);
}
