using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Evaluation;

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
                notes["LPIPS input"] = "real images bilinear-resized (antialiased) to the generated size, both scaled to [-1, 1]";
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
                    throw new UserInputException($"{file}: {key} is [{string.Join(", ", given.shape)}], expected [{string.Join(", ", target.shape)}]");
                target.copy_(given.to(target.dtype));
            }
            else if (!key.EndsWith("num_batches_tracked")) throw new UserInputException($"{file} has no {key}: not the FID Inception weights");
        }
    }

    public Dictionary<string, double> Evaluate(DecoderTrainer trainer, IEnumerable<DecoderBatch> batches, IReadOnlyList<double> condScale, long seed)
    {
        var realFeatures = new List<Tensor>();
        var fakeFeatures = new List<Tensor>();
        var fakeLogits = new List<Tensor>();
        var lpips = new List<double>();
        long count = 0;
        string fidTap = _config.FID?.Feature.ToString() ?? "2048";
        string kidTap = _config.KID?.Feature.ToString() ?? "2048";
        string isTap = _config.IS?.Feature ?? "logits_unbiased";
        var generator = new Generator((ulong)seed + 13, _device);
        foreach (var batch in batches)
        {
            using (batch)
            {
                if (count >= _config.NEvaluationSamples) break;
                using var scope = NewDisposeScope();
                int take = (int)Math.Min(batch.Count, _config.NEvaluationSamples - count);
                var embeds = batch.ImageEmbeddings?[..take].to(_device);
                var generated = trainer.Sample(embeds, batch.TextEncodings?[..take].to(_device), new SampleOptions { CondScale = condScale, Generator = generator });
                var real = batch.Images[..take].to(_device);
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
                    // Real images come at the data's size: resized to the generated size first (as upstream does).
                    var realResized = nn.functional.interpolate(real, size: [generated.shape[2], generated.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
                    var d = _lpips.forward(realResized.clamp(0, 1) * 2 - 1, generated * 2 - 1);
                    lpips.AddRange(d.cpu().data<float>().Select(v => (double)v));
                }
                count += take;
            }
        }

        var metrics = new Dictionary<string, double>();
        if (count == 0) return metrics;
        if (_inception is not null)
        {
            using var scope = NewDisposeScope();
            var real = cat(realFeatures.ToArray(), 0);
            var fake = cat(fakeFeatures.ToArray(), 0);
            long fidWidth = int.Parse(fidTap);
            if (_config.FID is not null) metrics["FID"] = MetricMath.Fid(real[.., ..(int)fidWidth], fake[.., ..(int)fidWidth]);
            if (_config.KID is { } kid)
            {
                var (mean, std) = MetricMath.Kid(real[.., (int)fidWidth..], fake[.., (int)fidWidth..], kid.Subsets, kid.SubsetSize,
                                                 kid.Degree, kid.Gamma, kid.Coef, new Generator((ulong)seed + 17));
                (metrics["KID_mean"], metrics["KID_std"]) = (mean, std);
            }
            if (_config.IS is { } inceptionScore)
            {
                var (mean, std) = MetricMath.InceptionScore(cat(fakeLogits.ToArray(), 0), Math.Min(inceptionScore.Splits, (int)count), new Generator((ulong)seed + 19));
                (metrics["IS_mean"], metrics["IS_std"]) = (mean, std);
            }
            foreach (var t in realFeatures.Concat(fakeFeatures).Concat(fakeLogits)) t.Dispose();
        }
        if (_lpips is not null && lpips.Count > 0)
            metrics["LPIPS"] = _config.LPIPS!.Reduction == "sum" ? lpips.Sum() : lpips.Average();
        return metrics;
    }

    /// <summary>Images in [0, 1] → 0–255 integers, as upstream feeds torchmetrics (uint8).</summary>
    private static Tensor ToUint8(Tensor images) => (images.clamp(0, 1) * 255).to(ScalarType.Byte);

    public void Dispose()
    {
        _inception?.Dispose();
        _lpips?.Dispose();
    }
}
