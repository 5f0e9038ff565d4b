using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>What one training step did.</summary>
public sealed record StepResult(int UnetNumber, double Loss, bool Skipped, double GradNorm, double LearningRate);

/// <summary>
/// Trains a Decoder as upstream's DecoderTrainer (spec §4): per unet an AdamW (betas 0.9/0.99,
/// eps 1e-8; weight decay only on ≥2-D tensors, Adam when wd = 0), linear warmup, gradient-norm
/// clipping, an EMA copy, and a step counter; unets masked out of training get no optimizer.
/// Each step runs in a dispose scope. A non-finite loss skips the step and is counted.
/// </summary>
public sealed class DecoderTrainer : IDisposable
{
    public Decoder Decoder { get; }
    private readonly TrainConfig _config;
    private readonly OptimizerHelper?[] _optimizers;
    private readonly double[] _baseLr;
    private readonly int?[] _warmup;
    private readonly double[] _maxGradNorm;
    public IReadOnlyList<UnetEma>? Ema { get; }
    public long[] Steps { get; }
    public IReadOnlyList<bool> Trained { get; }
    public long SkippedNonFinite { get; private set; }
    public int ConsecutiveNonFinite { get; private set; }

    public DecoderTrainer(Decoder decoder, TrainConfig config)
    {
        Decoder = decoder;
        _config = config;
        int n = decoder.NumUnets;
        Trained = config.UnetTrainingMask?.ToArray() ?? Enumerable.Repeat(true, n).ToArray();
        Steps = new long[n];
        _baseLr = config.Lr.Expand(n).ToArray();
        _warmup = config.WarmupSteps?.Expand(n).ToArray() ?? new int?[n];
        _maxGradNorm = config.MaxGradNorm.Expand(n).ToArray();
        var wd = config.Wd.Expand(n);
        _optimizers = new OptimizerHelper?[n];
        for (int i = 0; i < n; i++)
        {
            if (!Trained[i]) continue;
            var parameters = decoder.Unet(i + 1).parameters().ToList();
            _optimizers[i] = wd[i] == 0
                ? optim.Adam(parameters, lr: _baseLr[i], beta1: 0.9, beta2: 0.99, eps: 1e-8)
                : optim.AdamW(
                    [
                        new AdamW.ParamGroup(parameters.Where(p => p.dim() >= 2), new AdamW.Options { weight_decay = wd[i] }),
                        new AdamW.ParamGroup(parameters.Where(p => p.dim() < 2), new AdamW.Options { weight_decay = 0 }),
                    ],
                    lr: _baseLr[i], beta1: 0.9, beta2: 0.99, eps: 1e-8);
        }
        if (config.UseEma)
            Ema = Enumerable.Range(1, n).Select(u => new UnetEma(decoder.Unet(u), beta: config.EmaBeta)).ToArray();
    }

    /// <summary>Optimizer of a unet (null when the unet is not trained).</summary>
    public OptimizerHelper? Optimizer(int unetNumber) => _optimizers[unetNumber - 1];

    /// <summary>The learning rate the next step of this unet uses: base × min(1, (k + 1)/warmup).</summary>
    public double LearningRate(int unetNumber)
    {
        int i = unetNumber - 1;
        double factor = _warmup[i] is { } w ? Math.Min(1.0, (Steps[i] + 1) / (double)w) : 1.0;
        return _baseLr[i] * factor;
    }

    /// <summary>Forward, backward and update of one unet on a batch (images in [0, 1]).</summary>
    public StepResult Step(Tensor images, Tensor? imageEmbeds, Tensor? textEncodings, int unetNumber, Generator? generator = null)
    {
        int i = unetNumber - 1;
        var optimizer = _optimizers[i]
            ?? throw new InvalidOperationException($"unet {unetNumber} is masked out of training (train.unet_training_mask)");
        using var scope = NewDisposeScope();
        Decoder.train();
        optimizer.zero_grad();
        var loss = Decoder.forward(images, imageEmbeds, textEncodings, unetNumber, generator);
        double value = loss.item<float>();
        double lr = LearningRate(unetNumber);
        if (!double.IsFinite(value))
        {
            // A NaN/inf loss must not reach the weights (or the EMA): drop the step, count it.
            SkippedNonFinite++;
            ConsecutiveNonFinite++;
            optimizer.zero_grad();
            return new StepResult(unetNumber, value, true, double.NaN, lr);
        }
        loss.backward();
        var parameters = Decoder.Unet(unetNumber).parameters().Where(p => p.grad is not null).ToList();
        // With max_grad_norm 0 the norm is still measured (an infinite bound never clips).
        double norm = nn.utils.clip_grad_norm_(parameters, _maxGradNorm[i] > 0 ? _maxGradNorm[i] : double.PositiveInfinity);
        if (!double.IsFinite(norm))
        {
            SkippedNonFinite++;
            ConsecutiveNonFinite++;
            optimizer.zero_grad();
            return new StepResult(unetNumber, value, true, norm, lr);
        }
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
        optimizer.step();
        optimizer.zero_grad();
        Ema?[i].Update();
        Steps[i]++;
        ConsecutiveNonFinite = 0;
        return new StepResult(unetNumber, value, false, norm, lr);
    }

    /// <summary>Validation loss of one unet: no gradients, no update (condition dropout applies, as upstream).</summary>
    public double Loss(Tensor images, Tensor? imageEmbeds, Tensor? textEncodings, int unetNumber, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return Decoder.forward(images, imageEmbeds, textEncodings, unetNumber, generator).item<float>();
    }

    /// <summary>The first and last unet (1-based) that unet_training_mask trains.</summary>
    public (int First, int Last) TrainedRange => (Trained.ToList().IndexOf(true) + 1, Trained.ToList().LastIndexOf(true) + 1);

    /// <summary>
    /// Upstream's generate_samples for a (partly) masked run: the cascade from the first trained unet —
    /// starting from the real images when that unet is an upsampler — to the last trained one.
    /// </summary>
    public Tensor SampleTrained(Tensor? imageEmbeds, Tensor? textEncodings, Tensor realImages, SampleOptions options)
    {
        var (first, last) = TrainedRange;
        return Sample(imageEmbeds, textEncodings,
            options with { StartAtUnet = first, StopAtUnet = last, StartImage = first > 1 ? realImages : null });
    }

    /// <summary>Samples through the cascade with the EMA weights when use_ema (as upstream's trainer.sample).</summary>
    public Tensor Sample(Tensor? imageEmbeds, Tensor? textEncodings, SampleOptions options, bool useEma = true)
    {
        var unets = useEma && Ema is not null ? Ema.Select(e => e.Averaged).ToArray() : null;
        return Decoder.Sample(imageEmbeds, textEncodings, options with { Unets = unets });
    }

    public void Dispose()
    {
        foreach (var o in _optimizers) o?.Dispose();
        if (Ema is not null) foreach (var e in Ema) e.Dispose();
    }
}
