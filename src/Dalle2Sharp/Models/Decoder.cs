using Dalle2Sharp.Config;
using Dalle2Sharp.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Models;

/// <summary>What one cascade sampling run uses.</summary>
public sealed record SampleOptions
{
    /// <summary>Guidance scale per unet (index = unet number − 1).</summary>
    public IReadOnlyList<double>? CondScale { get; init; }
    /// <summary>Sampler per unet; null = the config's choice.</summary>
    public IReadOnlyList<SamplerSpec>? Samplers { get; init; }
    public int StartAtUnet { get; init; } = 1;
    public int? StopAtUnet { get; init; }
    /// <summary>Image in [0, 1] to upsample from when starting after the first unet.</summary>
    public Tensor? StartImage { get; init; }
    public Generator? Generator { get; init; }
    /// <summary>Unets to sample with instead of the decoder's own (e.g. their EMA copies); index = unet number − 1.</summary>
    public IReadOnlyList<Unet>? Unets { get; init; }
}

/// <summary>
/// The DALL-E 2 decoder (upstream's Decoder): a cascade of unets, one noise scheduler each, and
/// low-res conditioners for the upsamplers. forward trains one unet and returns its loss; Sample
/// runs the cascade. Images are in [0, 1] outside and [-1, 1] inside.
/// </summary>
public sealed class Decoder : nn.Module
{
    private readonly ModuleList<Unet> unets = new();
    private readonly ModuleList<NoiseScheduler> noise_schedulers = new();
    private readonly ModuleList<nn.Module> lowres_conds = new();

    public DecoderConfig Config { get; }
    public IReadOnlyList<int> ImageSizes { get; }
    public IReadOnlyList<Denoiser> Denoisers { get; }
    public IReadOnlyList<bool> LearnedVariance { get; }
    public int NumUnets => unets.Count;
    public Unet Unet(int number) => unets[number - 1];
    public bool TextConditioned => unets.Any(u => u.CondOnTextEncodings);
    private readonly SamplerSpec[] defaultSamplers;

    public Decoder(DecoderConfig c) : base(nameof(Decoder))
    {
        Config = c;
        int n = c.Unets.Count;
        // decoder.clip is used outside the decoder (as upstream's training script does): the decoder itself never holds CLIP.
        ImageSizes = c.ImageSizes?.ToArray() ?? [c.ImageSize!.Value];

        // A single learned_variance applies to the first unet only (upstream pads with false).
        LearnedVariance = c.LearnedVariance.IsList
            ? c.LearnedVariance.List!
            : Enumerable.Range(0, n).Select(i => i == 0 && c.LearnedVariance.Scalar).ToArray();
        var schedules = c.BetaSchedulePerUnet(n);
        var useNoise = n > 1 ? c.UseNoiseForLowresCond.Expand(n - 1) : [];
        var useBlur = n > 1 ? c.UseBlurForLowresCond.Expand(n - 1) : [];
        var sigma = c.BlurSigma.IsList ? (c.BlurSigma.List![0], c.BlurSigma.List[1]) : (c.BlurSigma.Scalar, c.BlurSigma.Scalar);
        var kernel = c.BlurKernelSize.IsList
            ? (c.BlurKernelSize.List![0], c.BlurKernelSize.List[1])
            : (c.BlurKernelSize.Scalar, c.BlurKernelSize.Scalar);

        var denoisers = new List<Denoiser>();
        defaultSamplers = new SamplerSpec[n];
        for (int i = 0; i < n; i++)
        {
            var u = c.Unets[i].Clone();
            u.LowresCond = i > 0;
            u.LowresNoiseCond = i > 0 && useNoise[i - 1];
            u.CondOnImageEmbeds = !c.Unconditional && i == 0;
            u.CondOnTextEncodings = !c.Unconditional && u.CondOnTextEncodings;
            u.Channels = c.Channels;
            u.ChannelsOut = c.Channels * (LearnedVariance[i] ? 2 : 1);
            unets.Add(new Unet(u));

            var scheduler = new NoiseScheduler(schedules[i], c.Timesteps, c.LossType, c.P2LossWeightGamma.At(i), c.P2LossWeightK);
            noise_schedulers.Add(scheduler);
            denoisers.Add(new Denoiser(scheduler, c.Channels, LearnedVariance[i], c.PredictXStart.At(i),
                c.PredictV.At(i), c.LearnedVarianceConstrainFrac, c.UseDynamicThres, c.DynamicThresPercentile));

            lowres_conds.Add(i == 0 ? nn.Identity() : new LowresConditioner(c.LowresDownsampleFirst, useBlur[i - 1], useNoise[i - 1],
                c.BlurProb, sigma, kernel, c.AutoNormalizeImg));

            int? steps = c.SampleTimesteps?.At(i);
            string kind = c.Sampler.At(i);
            if (kind == "auto") kind = steps is { } s && s < c.Timesteps ? "ddim" : "ddpm";
            defaultSamplers[i] = new SamplerSpec(kind, steps, c.DdimSamplingEta);
        }
        Denoisers = denoisers;
        RegisterComponents();
    }

    public SamplerSpec DefaultSampler(int unetNumber) => defaultSamplers[unetNumber - 1];

    /// <summary>The training loss of one unet (1-based) on a batch of images in [0, 1].</summary>
    public Tensor forward(Tensor image, Tensor? imageEmbed, Tensor? textEncodings = null, int unetNumber = 1, Generator? generator = null)
    {
        int i = unetNumber - 1;
        if (i < 0 || i >= NumUnets) throw new ArgumentOutOfRangeException(nameof(unetNumber), $"unet_number must be 1..{NumUnets}");
        if (image.shape[1] != Config.Channels) throw new ArgumentException($"images have {image.shape[1]} channels, the decoder {Config.Channels}");
        int size = ImageSizes[i];
        if (image.shape[2] < size || image.shape[3] < size)
            throw new ArgumentException($"images are {image.shape[2]}×{image.shape[3]}, unet {unetNumber} needs at least {size}");

        var times = noise_schedulers[i].SampleRandomTimes(image.shape[0], generator, image.device);
        if (!Config.Unconditional && imageEmbed is null) throw new ArgumentException("image embeddings are required (this decoder has no CLIP)");
        if (TextConditioned != (textEncodings is not null) && !Config.Unconditional)
            throw new ArgumentException(TextConditioned
                ? "this decoder is text-conditioned: text encodings are required"
                : "this decoder is not text-conditioned: drop the text encodings");

        Tensor? lowres = null, lowresNoise = null;
        if (lowres_conds[i] is LowresConditioner conditioner)
            (lowres, lowresNoise) = conditioner.forward(image, size, ImageSizes[i - 1], training: true, generator: generator);
        var target = LowresConditioner.ResizeNearest(image, size);
        if (Config.RandomCropSizes?.ElementAtOrDefault(i) is { } crop)
            (target, lowres) = RandomCrop(target, lowres, crop, generator);
        return PLosses(unetNumber, target, times, new UnetConditioning(imageEmbed, textEncodings, lowres, lowresNoise), noise: null, generator);
    }

    /// <summary>
    /// Upstream's kornia RandomCrop(p = 1) for upsamplers: one uniformly drawn crop position per image,
    /// applied to the target and to its low-res conditioning image alike (kornia reuses its params).
    /// </summary>
    public static (Tensor Image, Tensor? Lowres) RandomCrop(Tensor image, Tensor? lowres, int crop, Generator? generator)
    {
        long b = image.shape[0], h = image.shape[2], w = image.shape[3];
        if (crop >= h && crop >= w) return (image, lowres);
        // Drawn on the images' device: the training generator lives there (a CPU draw from a CUDA generator fails).
        var tops = randint(0, h - crop + 1, [b], generator: generator, device: image.device).cpu().data<long>().ToArray();
        var lefts = randint(0, w - crop + 1, [b], generator: generator, device: image.device).cpu().data<long>().ToArray();
        Tensor Crop(Tensor t) => stack(Enumerable.Range(0, (int)b).Select(k => t[k].narrow(1, tops[k], crop).narrow(2, lefts[k], crop)).ToArray());
        return (Crop(image), lowres is null ? null : Crop(lowres));
    }

    /// <summary>
    /// The diffusion loss at given timesteps (and noise, else drawn): simple loss on the prediction,
    /// P2-reweighted, plus the weighted VLB term when the unet learns its variance.
    /// </summary>
    public Tensor PLosses(int unetNumber, Tensor xStart, Tensor times, UnetConditioning cond, Tensor? noise = null, Generator? generator = null)
    {
        int i = unetNumber - 1;
        var unet = unets[i];
        var d = Denoisers[i];
        var scheduler = d.Scheduler;
        noise ??= randn(xStart.shape, device: xStart.device, generator: generator);
        xStart = Normalize(xStart);
        if (cond.LowresCondImg is not null) cond = cond with { LowresCondImg = Normalize(cond.LowresCondImg) };
        var xNoisy = scheduler.QSample(xStart, times, noise);

        if (unet.SelfCond && rand(1, generator: generator).item<float>() < 0.5)
        {
            using (no_grad())
            {
                var (selfPrediction, _) = d.Split(unet.forward(xNoisy, times, cond, generator: generator));
                cond = cond with { SelfCond = selfPrediction.detach() };
            }
        }

        var output = unet.forward(xNoisy, times, cond, Config.ImageCondDropProb, Config.TextCondDropProb, generator);
        var (prediction, _) = d.Split(output);
        var target = d.PredictV ? scheduler.CalculateV(xStart, times, noise) : d.PredictXStart ? xStart : noise;
        var loss = VariationalBound.MeanFlat(scheduler.Loss(prediction, target));
        loss = scheduler.P2ReweighLoss(loss, times).mean();
        if (!d.LearnedVariance) return loss;

        var (trueMean, _, trueLogVariance) = scheduler.QPosterior(xStart, xNoisy, times);
        // Upstream reads the output as ε here whatever the parameterisation (spec §3.5), and does not clip x0.
        var (modelMean, _, modelLogVariance, _) = d.PMeanVariance(xNoisy, times, output, clipDenoised: false, predictXStart: false, predictV: false);
        var detachedMean = modelMean.detach();
        var kl = VariationalBound.MeanFlat(VariationalBound.NormalKl(trueMean, trueLogVariance, detachedMean, modelLogVariance))
            * VariationalBound.Nat;
        var nll = -VariationalBound.MeanFlat(VariationalBound.DiscretizedGaussianLogLikelihood(xStart, detachedMean, 0.5 * modelLogVariance))
            * VariationalBound.Nat;
        var vb = where(times == 0, nll, kl).mean() * Config.VbLossWeight;
        return loss + vb;
    }

    /// <summary>
    /// Samples images in [0, 1] through the cascade (or a range of it), under no_grad and in eval mode.
    /// Random numbers come from options.Generator in upstream's order.
    /// </summary>
    public Tensor Sample(Tensor? imageEmbed, Tensor? textEncodings = null, SampleOptions? options = null, int batchSize = 1)
    {
        options ??= new SampleOptions();
        bool wasTraining = training;
        eval();
        try
        {
            using var _ = no_grad();
            if (!Config.Unconditional && imageEmbed is null) throw new ArgumentException("image embeddings are required to sample");
            long b = imageEmbed?.shape[0] ?? batchSize;
            var device = imageEmbed?.device ?? unets[0].parameters().First().device;
            int start = options.StartAtUnet, stop = options.StopAtUnet ?? NumUnets;
            if (start < 1 || stop > NumUnets || start > stop) throw new ArgumentException($"unets {start}..{stop} are not within 1..{NumUnets}");
            Tensor? img = null;
            if (start > 1)
            {
                if (options.StartImage is null) throw new ArgumentException($"starting at unet {start} needs an image to upsample");
                img = LowresConditioner.ResizeNearest(options.StartImage, ImageSizes[start - 2]);
            }
            for (int number = start; number <= stop; number++)
            {
                int i = number - 1;
                var unet = options.Unets?[i] ?? unets[i];
                var d = Denoisers[i];
                int size = ImageSizes[i];
                Tensor? lowres = null, lowresNoise = null;
                if (lowres_conds[i] is LowresConditioner conditioner)
                {
                    long? level = conditioner.UseNoise ? (long)(Config.LowresNoiseSampleLevel * 1000) : null;
                    (lowres, lowresNoise) = conditioner.forward(img!, size, ImageSizes[i - 1], training: false, fixedNoiseLevel: level,
                        generator: options.Generator);
                    lowres = Normalize(lowres);
                }
                double condScale = options.CondScale is { } scales ? scales[Math.Min(i, scales.Count - 1)] : 1.0;
                if (condScale != 1.0 && Config.ImageCondDropProb <= 0 && Config.TextCondDropProb <= 0)
                    throw new ArgumentException(
                        "cond_scale ≠ 1 needs a decoder trained with condition dropout (image_cond_drop_prob or text_cond_drop_prob > 0)");
                var baseCond = new UnetConditioning(imageEmbed, textEncodings, lowres, lowresNoise);
                GuidedModel model = (x, t, selfCond) =>
                    unet.ForwardWithCondScale(x, t, baseCond with { SelfCond = selfCond }, condScale, options.Generator);
                var spec = options.Samplers is { } samplers ? samplers[Math.Min(i, samplers.Count - 1)] : defaultSamplers[i];
                var sampled = Samplers.Run(spec, d, model, [b, Config.Channels, size, size], clipDenoised: true, unet.SelfCond, device,
                    options.Generator);
                img?.Dispose();
                img = Unnormalize(sampled).clamp(0, 1);
                sampled.Dispose();
            }
            return img!;
        }
        finally
        {
            train(wasTraining);
        }
    }

    private Tensor Normalize(Tensor img) => Config.AutoNormalizeImg ? img * 2 - 1 : img;
    private Tensor Unnormalize(Tensor img) => Config.AutoNormalizeImg ? (img + 1) * 0.5 : img;
}
