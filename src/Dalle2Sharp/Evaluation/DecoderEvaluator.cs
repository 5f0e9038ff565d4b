using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Models;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Training;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Evaluation;

/// <summary>The metrics computed, and for each one that could not be, "metric: cause".</summary>
public sealed record EvaluationResult(Dictionary<string, double> Metrics, List<string> Errors);

/// <summary>
/// The evaluation phase: generate images from held-out embeddings, then FID / IS / KID on Inception
/// features of the uint8 images and LPIPS between each real image and its generated one, logged with
/// upstream's names (FID, IS_mean, IS_std, KID_mean, KID_std, LPIPS). IS is computed on the generated
/// images (upstream computes it on the real ones by mistake).
/// </summary>
public sealed class DecoderEvaluator : IDisposable
{
    private readonly EvaluateConfig _config;
    private readonly FidInceptionV3? _inception;
    private readonly Lpips? _lpips;
    private readonly Device _device;

    public DecoderEvaluator(EvaluateConfig config, MetricWeights weights, Device device)
    {
        _config = config;
        _device = device;
        if (config.FID is not null || config.IS is not null || config.KID is not null)
        {
            _inception = new FidInceptionV3();
            LoadInception(_inception, weights.Inception);
            _inception.to(device);
        }
        if (config.LPIPS is { } l)
        {
            _lpips = new Lpips(l.NetType);
            _lpips.LoadWeights(weights.LpipsBackbone(l.NetType), weights.LpipsHeads(l.NetType));
            _lpips.to(device);
        }
    }

    public bool HasMetrics => _inception is not null || _lpips is not null;

    /// <summary>How the images reach the networks, logged next to the numbers (metrics are only comparable under the same inputs).</summary>
    public IReadOnlyDictionary<string, string> InputNotes
    {
        get
        {
            var notes = new Dictionary<string, string>();
            if (_inception is not null)
                notes["Inception input"] = "uint8, TF1-style bilinear resize to 299 (torch-fidelity's, as torchmetrics uses)";
            if (_lpips is not null)
                notes["LPIPS input"] = "real images resized to the generated size (resize-right cubic, as upstream), both scaled to [-1, 1]";
            return notes;
        }
    }

    /// <summary>The FID Inception weights; the published file has no num_batches_tracked entries.</summary>
    private static void LoadInception(FidInceptionV3 net, string file)
    {
        var source = Runtime.TorchFiles.LoadStateDict(file);
        using var _ = no_grad();
        foreach (var (key, target) in net.state_dict())
        {
            if (source[key] is Tensor given)
            {
                if (!given.shape.SequenceEqual(target.shape))
                    throw new UserInputException(
                        $"{file}: {key} is [{string.Join(", ", given.shape)}], expected [{string.Join(", ", target.shape)}]");
                target.copy_(given.to(target.dtype));
            }
            else if (!key.EndsWith("num_batches_tracked")) throw new UserInputException($"{file} has no {key}: not the FID Inception weights");
        }
    }

    /// <summary>
    /// Generates images for up to n_evaluation_samples held-out embeddings and computes the configured
    /// metrics. A metric that cannot be computed (too few images for KID's subsets, a numerical
    /// failure) is reported in <see cref="EvaluationResult.Errors"/> with its cause and the others are
    /// still computed; only a failure of generation itself fails them all.
    /// </summary>
    /// <remarks>
    /// Data parallel (<paramref name="collectives"/> with several ranks, all calling): each rank generates up to its share
    /// of n_evaluation_samples from its own validation shards with its own generator, then the features, logits and LPIPS
    /// distances of all ranks are gathered and every rank computes the same metrics over all images (rank 0 logs them).
    /// A generation failure on any rank is reported by all, without leaving a rank waiting.
    /// </remarks>
    public EvaluationResult Evaluate(DecoderTrainer trainer, IEnumerable<DecoderBatch> batches, IReadOnlyList<double> condScale, long seed,
                                     ICollectives? collectives = null)
    {
        collectives ??= SingleProcess.Instance;
        long limit = (_config.NEvaluationSamples + collectives.WorldSize - 1) / collectives.WorldSize;
        // Every tensor made here (the features gathered per batch included) is freed on the way out, failures too.
        using var evaluationScope = NewDisposeScope();
        var realFeatures = new List<Tensor>();
        var fakeFeatures = new List<Tensor>();
        var fakeLogits = new List<Tensor>();
        var lpips = new List<double>();
        var errors = new List<string>();
        long count = 0;
        string fidTap = _config.FID?.Feature.ToString() ?? "2048";
        string kidTap = _config.KID?.Feature.ToString() ?? "2048";
        string isTap = _config.IS?.Feature ?? "logits_unbiased";
        var generator = new Generator((ulong)seed + GenerationSeedOffset + (ulong)collectives.Rank * RankSeedStride, _device);
        string? failure = null;
        try
        {
        foreach (var batch in batches)
        {
            using (batch)
            {
                if (count >= limit) break;
                using var scope = NewDisposeScope();
                int take = (int)Math.Min(batch.Count, limit - count);
                var embeds = batch.ImageEmbeddings?[..take].to(_device);
                var real = batch.Images[..take].to(_device);
                var generated = trainer.SampleTrained(embeds, batch.TextEncodings?[..take].to(_device), real,
                    new SampleOptions { CondScale = condScale, Generator = generator });
                // As upstream's generate_samples: real images resized to the generated size, clamped to [0, 1].
                real = ResizeToGenerated(real, generated);
                using var _ = no_grad();
                if (_inception is not null)
                {
                    var realTaps = _inception.forward(ToUint8(real));
                    var fakeTaps = _inception.forward(ToUint8(generated));
                    realFeatures.Add(cat([realTaps[fidTap], realTaps[kidTap]], 1).cpu().MoveToOuterDisposeScope());
                    fakeFeatures.Add(cat([fakeTaps[fidTap], fakeTaps[kidTap]], 1).cpu().MoveToOuterDisposeScope());
                    fakeLogits.Add(fakeTaps[isTap].cpu().MoveToOuterDisposeScope());
                }
                if (_lpips is not null)
                {
                    var d = _lpips.forward((real * 2 - 1).clamp(-1, 1), (generated * 2 - 1).clamp(-1, 1));
                    lpips.AddRange(d.cpu().data<float>().Select(v => (double)v));
                }
                count += take;
            }
        }
        }
        catch (Exception e) when (collectives.WorldSize > 1 && e is not OutOfMemoryException)
        {
            failure = $"generation on rank {collectives.Rank} failed: {e.Message}";
        }

        var metrics = new Dictionary<string, double>();
        if (collectives.WorldSize > 1)
        {
            // All ranks arrive here, failed or not: agree first, then gather everything.
            var agreed = collectives.AllReduceSum(failure is null ? 0 : 1, count);
            if (agreed[0] > 0) return new EvaluationResult(metrics, [failure ?? $"generation failed on {agreed[0]} other rank(s)"]);
            count = (long)agreed[1];
            if (count == 0) return new EvaluationResult(metrics, ["no evaluation images: the validation split yielded no samples"]);
            if (_inception is not null)
            {
                realFeatures = [collectives.AllGatherRows(cat(realFeatures.ToArray(), 0))];
                fakeFeatures = [collectives.AllGatherRows(cat(fakeFeatures.ToArray(), 0))];
                fakeLogits = [collectives.AllGatherRows(cat(fakeLogits.ToArray(), 0))];
            }
            if (_lpips is not null)
                lpips = collectives.AllGatherRows(tensor(lpips.Select(v => (float)v).ToArray())).data<float>().Select(v => (double)v).ToList();
        }
        if (count == 0) return new EvaluationResult(metrics, ["no evaluation images: the validation split yielded no samples"]);
        void Try(string metric, Action compute)
        {
            try { compute(); }
            catch (Exception e) when (e is not OutOfMemoryException) { errors.Add($"{metric}: {e.Message}"); }
        }
        if (_inception is not null)
        {
            using var scope = NewDisposeScope();
            var real = cat(realFeatures.ToArray(), 0);
            var fake = cat(fakeFeatures.ToArray(), 0);
            int fidWidth = int.Parse(fidTap);
            if (_config.FID is not null) Try("FID", () => metrics["FID"] = MetricMath.Fid(real[.., ..fidWidth], fake[.., ..fidWidth]));
            if (_config.KID is { } kid)
            {
                if (count < kid.SubsetSize)
                    errors.Add($"KID: subset_size {kid.SubsetSize} is larger than the {count} images evaluated; " +
                               "skipped (lower evaluate.KID.subset_size)");
                else
                    Try("KID", () =>
                    {
                        var (mean, std) = MetricMath.Kid(real[.., fidWidth..], fake[.., fidWidth..], kid.Subsets, kid.SubsetSize,
                                                         kid.Degree, kid.Gamma, kid.Coef, new Generator((ulong)seed + KidSeedOffset));
                        (metrics["KID_mean"], metrics["KID_std"]) = (mean, std);
                    });
            }
            if (_config.IS is { } inceptionScore)
                Try("IS", () =>
                {
                    var (mean, std) = MetricMath.InceptionScore(cat(fakeLogits.ToArray(), 0), Math.Min(inceptionScore.Splits, (int)count),
                                                                new Generator((ulong)seed + InceptionScoreSeedOffset));
                    (metrics["IS_mean"], metrics["IS_std"]) = (mean, std);
                });
        }
        if (_lpips is not null && lpips.Count > 0)
            metrics["LPIPS"] = _config.LPIPS!.Reduction == "sum" ? lpips.Sum() : lpips.Average();
        return new EvaluationResult(metrics, errors);
    }

    /// <summary>Seed offsets from the run's seed: generation, KID's subsets and IS's split shuffle draw independently.</summary>
    private const ulong GenerationSeedOffset = 13, KidSeedOffset = 17, InceptionScoreSeedOffset = 19;
    /// <summary>Rank r generates with seed + GenerationSeedOffset + r·RankSeedStride.</summary>
    private const ulong RankSeedStride = 1_000_003;

    /// <summary>Real images at the generated size as upstream's resize_image_to (resize-right, cubic, antialiased), clamped to [0, 1].</summary>
    private static Tensor ResizeToGenerated(Tensor real, Tensor generated) =>
        real.shape[^1] == generated.shape[^1] ? real : ResizeRight.Resize(real, (int)generated.shape[^1]).clamp(0, 1);

    /// <summary>Images in [0, 1] → uint8 as upstream's evaluate_trainer: mul(255).add(0.5).clamp(0, 255), truncated.</summary>
    public static Tensor ToUint8(Tensor images) => (images * 255 + 0.5).clamp(0, 255).to(ScalarType.Byte);

    public void Dispose()
    {
        _inception?.Dispose();
        _lpips?.Dispose();
    }
}
