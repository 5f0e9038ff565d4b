using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using TorchSharp;
using Dalle2Sharp.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// What one training step did. With the device-side guard (<see cref="DecoderTrainer.DeviceSideGuard"/>) the step is
/// not read back: Loss and GradNorm are NaN, Skipped false and Deferred true; <see cref="DecoderTrainer.TakeStatistics"/>
/// gives the window's numbers.
/// </summary>
public sealed record StepResult(int UnetNumber, double Loss, bool Skipped, double GradNorm, double LearningRate, bool Deferred = false);

/// <summary>Losses and skips of one unet since the last <see cref="DecoderTrainer.TakeStatistics"/>.</summary>
public sealed record StepStatistics(double MeanLoss, long Steps, long Skipped);

/// <summary>
/// Trains a Decoder as upstream's DecoderTrainer (spec §4): per unet an AdamW (betas 0.9/0.99,
/// eps 1e-8; weight decay only on ≥2-D tensors, Adam when wd = 0), linear warmup, gradient-norm
/// clipping, an EMA copy, and a step counter; unets masked out of training get no optimizer.
/// Each step runs in a dispose scope. A non-finite loss or gradient norm skips the step and is counted: on the CPU the
/// step reads them back (free there); with <see cref="DeviceSideGuard"/> (the default off the CPU) the optimizer and
/// EMA updates are gated on the device and nothing is read back per step — the counts arrive with TakeStatistics.
/// </summary>
public sealed class DecoderTrainer : IDisposable
{
    public Decoder Decoder { get; }
    private readonly TrainConfig _config;
    private readonly FlatAdamW?[] _optimizers;
    private readonly Tensor?[] _lossSum, _stepCount, _skipCount, _consecutive;
    private readonly double[] _hostLossSum;
    private readonly long[] _hostSteps, _hostSkips;
    private readonly double[] _baseLr;
    private readonly int?[] _warmup;
    private readonly double[] _maxGradNorm;
    public IReadOnlyList<UnetEma>? Ema { get; }
    public long[] Steps { get; }
    public IReadOnlyList<bool> Trained { get; }
    public long SkippedNonFinite { get; private set; }
    public int ConsecutiveNonFinite { get; private set; }

    /// <summary>
    /// Gate the updates on the device instead of reading the loss and norm back each step (no host synchronisation);
    /// on by default for CUDA, settable for tests.
    /// </summary>
    public bool DeviceSideGuard { get; set; }

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
        // EMA copies first: with train.amp they must average the float32 weights, before the unets turn bfloat16.
        if (config.UseEma)
            Ema = Enumerable.Range(1, n).Select(u => new UnetEma(decoder.Unet(u), beta: config.EmaBeta)).ToArray();
        _optimizers = new FlatAdamW?[n];
        for (int i = 0; i < n; i++)
        {
            if (!Trained[i]) continue;
            var unet = decoder.Unet(i + 1);
            List<Tensor>? master = null;
            if (config.Amp)
            {
                using (no_grad()) master = unet.parameters().Select(p => p.detach().clone().DetachFromDisposeScope()).ToList<Tensor>();
                unet.UseComputeType(ScalarType.BFloat16);
            }
            var parameters = unet.parameters().ToList();
            // Upstream: AdamW with weight decay on >= 2-D tensors only; Adam (one group) when wd = 0.
            bool decays = wd[i] != 0;
            FlatAdamW.Group[] groups = !decays
                ? [new(parameters, 0.0)]
                : [new(parameters.Where(p => p.dim() >= 2).ToList(), wd[i]), new(parameters.Where(p => p.dim() < 2).ToList(), 0.0)];
            var masterInGroupOrder = master is null ? null
                : groups.SelectMany(g => g.Parameters).Select(p => master[parameters.IndexOf(p)]).ToList();
            _optimizers[i] = new FlatAdamW(groups, _baseLr[i], beta1: 0.9, beta2: 0.99, eps: 1e-8, float32Master: masterInGroupOrder);
            if (master is not null) foreach (var t in master) t.Dispose();
        }
        (_lossSum, _stepCount, _skipCount, _consecutive) = (new Tensor?[n], new Tensor?[n], new Tensor?[n], new Tensor?[n]);
        (_hostLossSum, _hostSteps, _hostSkips) = (new double[n], new long[n], new long[n]);
        DeviceSideGuard = decoder.Unet(1).parameters().First().device.type == DeviceType.CUDA;
    }

    /// <summary>
    /// The float32 value to save for a tensor of the decoder or an EMA's online copy: with train.amp a trained unet's
    /// bfloat16 parameter is saved as its float32 master weights (checkpoints stay float32, as upstream's).
    /// </summary>
    public Tensor Float32(Tensor value) => _optimizers.Select(o => o?.MasterOf(value)).FirstOrDefault(m => m is not null) is { } master
        ? master.view(value.shape) : value;

    /// <summary>Optimizer of a unet (null when the unet is not trained).</summary>
    public FlatAdamW? Optimizer(int unetNumber) => _optimizers[unetNumber - 1];

    /// <summary>The learning rate the next step of this unet uses: base × min(1, (k + 1)/warmup).</summary>
    public double LearningRate(int unetNumber)
    {
        int i = unetNumber - 1;
        double factor = _warmup[i] is { } w ? Math.Min(1.0, (Steps[i] + 1) / (double)w) : 1.0;
        return _baseLr[i] * factor;
    }

    /// <summary>Forward, backward and update of one unet on a batch (images in [0, 1]).</summary>
    public StepResult Step(Tensor images, Tensor? imageEmbeds, Tensor? textEncodings, int unetNumber, Generator? generator = null) =>
        StepOn(unetNumber, () => Decoder.forward(images, imageEmbeds, textEncodings, unetNumber, generator));

    /// <summary>
    /// Backward and update of one unet on the loss <paramref name="loss"/> computes (in training mode, in this step's
    /// dispose scope). With several processes (<see cref="Collectives"/>) the gradients are averaged across them before
    /// clipping, and every rank takes the same decision on a non-finite loss or norm.
    /// </summary>
    public StepResult StepOn(int unetNumber, Func<Tensor> loss)
    {
        int i = unetNumber - 1;
        var optimizer = _optimizers[i]
            ?? throw new InvalidOperationException($"unet {unetNumber} is masked out of training (train.unet_training_mask)");
        using var scope = NewDisposeScope();
        Decoder.train();
        double lr = LearningRate(unetNumber);
        optimizer.LearningRate = lr;
        var value = loss();
        if (Collectives.WorldSize > 1) return DataParallelStep(i, value, lr);
        if (DeviceSideGuard) return GatedStep(i, value, lr);

        double lossValue = value.item<float>();
        if (!double.IsFinite(lossValue)) return Skip(i, lossValue, double.NaN, lr);   // a NaN/inf loss must not reach the weights
        value.backward();
        return Update(i, lossValue, lr);
    }

    /// <summary>Clipping, the optimizer and the EMA after backward; a non-finite norm skips.</summary>
    private StepResult Update(int i, double lossValue, double lr)
    {
        var optimizer = _optimizers[i]!;
        optimizer.Prepare();
        Ema?[i].AttachTo(optimizer);
        // With max_grad_norm 0 the norm is still measured (an infinite bound never clips).
        double norm = optimizer.ClipGradNorm(MaxNorm(i)).item<float>();
        if (!double.IsFinite(norm)) return Skip(i, lossValue, norm, lr);
        optimizer.Step();
        optimizer.ZeroGrad();
        Ema?[i].Update();
        Steps[i]++;
        ConsecutiveNonFinite = 0;
        (_hostLossSum[i], _hostSteps[i]) = (_hostLossSum[i] + lossValue, _hostSteps[i] + 1);
        return new StepResult(i + 1, lossValue, false, norm, lr);
    }

    /// <summary>The processes this trainer's steps are averaged over (one unless launched by MPI).</summary>
    public ICollectives Collectives { get; init; } = SingleProcess.Instance;

    /// <summary>Gradient buckets of at most this many elements per allreduce (25 MiB of float32, as PyTorch's DDP buckets).</summary>
    public const long AllReduceBucketElements = 25L * 1024 * 1024 / sizeof(float);

    /// <summary>Time and bytes of gradient averaging in the last data-parallel step (logged by the training loop).</summary>
    public (double Milliseconds, long Bytes) LastAllReduce { get; private set; }

    /// <summary>
    /// One data-parallel step: backward always (a rank's NaN reaches the averaged gradients of every rank, so all skip
    /// together), gradients summed across ranks in buckets and divided by the world size, the loss averaged.
    /// </summary>
    private StepResult DataParallelStep(int i, Tensor loss, double lr)
    {
        var optimizer = _optimizers[i]!;
        double localLoss = loss.item<float>();
        loss.backward();
        optimizer.Prepare();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long bytes = 0;
        using (no_grad())
        {
            foreach (var gradient in optimizer.AllGradients())
                for (long start = 0; start < gradient.numel(); start += AllReduceBucketElements)
                {
                    using var bucket = gradient.narrow(0, start, Math.Min(AllReduceBucketElements, gradient.numel() - start));
                    Collectives.AllReduceSum(bucket);
                    bytes += bucket.numel() * bucket.element_size();
                }
            foreach (var gradient in optimizer.AllGradients()) gradient.div_(Collectives.WorldSize);
        }
        LastAllReduce = (clock.Elapsed.TotalMilliseconds, bytes);
        double meanLoss = Collectives.AllReduceSum(localLoss)[0] / Collectives.WorldSize;
        if (!double.IsFinite(meanLoss)) return Skip(i, meanLoss, double.NaN, lr);
        return Update(i, meanLoss, lr);
    }

    /// <summary>
    /// Makes every rank hold rank 0's weights, EMA weights, optimizer state and step counts (at start and after a resume,
    /// so that ranks that initialised or loaded differently agree). Collective.
    /// </summary>
    public void BroadcastFromRoot()
    {
        if (Collectives.WorldSize == 1) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (_, t) in Decoder.state_dict()) Collectives.Broadcast(t);
        if (Ema is not null) foreach (var ema in Ema) { foreach (var (_, t) in ema.state_dict()) Collectives.Broadcast(t); ema.Resync(); }
        foreach (var optimizer in _optimizers.OfType<FlatAdamW>()) optimizer.Broadcast(Collectives);
        var steps = tensor(Steps);
        Collectives.Broadcast(steps);
        steps.data<long>().CopyTo(Steps, 0);
    }

    /// <summary>
    /// A fingerprint of the weights and EMA weights (sum and sum of squares in float64): equal on every rank of a
    /// data-parallel run after every step, which the training loop checks at each checkpoint.
    /// </summary>
    public (double Sum, double SumOfSquares) Fingerprint()
    {
        using var scope = NewDisposeScope();
        double sum = 0, squares = 0;
        var tensors = Decoder.parameters().Select(p => Float32(p))
            .Concat(Ema?.SelectMany(e => e.Averaged.parameters()).Select(p => (Tensor)p) ?? []);
        foreach (var t in tensors)
        {
            var d = t.detach().to(ScalarType.Float64);
            sum += d.sum().item<double>();
            squares += d.square().sum().item<double>();
        }
        return (sum, squares);
    }

    private double MaxNorm(int i) => _maxGradNorm[i] > 0 ? _maxGradNorm[i] : double.PositiveInfinity;

    private StepResult Skip(int i, double loss, double norm, double lr)
    {
        SkippedNonFinite++;
        ConsecutiveNonFinite++;
        _hostSkips[i]++;
        _optimizers[i]!.ZeroGrad();
        return new StepResult(i + 1, loss, true, norm, lr);
    }

    /// <summary>The device-side guard: backward always, the update and EMA gated on a finite loss and norm, sums on the device.</summary>
    private StepResult GatedStep(int i, Tensor loss, double lr)
    {
        var optimizer = _optimizers[i]!;
        loss.backward();
        optimizer.Prepare();
        Ema?[i].AttachTo(optimizer);
        var norm = optimizer.ClipGradNorm(MaxNorm(i));
        var ok = loss.detach().isfinite().logical_and(norm.isfinite());
        optimizer.Step(ok);
        optimizer.ZeroGrad();
        Ema?[i].Update(ok);
        Steps[i]++;   // corrected by TakeStatistics for the steps the gate skipped
        using (no_grad())
        {
            var device = loss.device;
            _lossSum[i] ??= zeros(1, dtype: float64, device: device).squeeze().DetachFromDisposeScope();
            _stepCount[i] ??= zeros(1, dtype: int64, device: device).squeeze().DetachFromDisposeScope();
            _skipCount[i] ??= zeros(1, dtype: int64, device: device).squeeze().DetachFromDisposeScope();
            _consecutive[i] ??= zeros(1, dtype: int64, device: device).squeeze().DetachFromDisposeScope();
            var lossValue = loss.detach().to(float64);
            _lossSum[i]!.add_(where(ok, lossValue, zeros_like(lossValue)));
            _stepCount[i]!.add_(ok.to(int64));
            _skipCount[i]!.add_(ok.logical_not().to(int64));
            _consecutive[i]!.add_(1).mul_(ok.logical_not().to(int64));
        }
        return new StepResult(i + 1, double.NaN, false, double.NaN, lr, Deferred: true);
    }

    /// <summary>
    /// The mean loss of the finished steps and the count of skipped ones since the last call (one device read with
    /// the device-side guard), updating <see cref="SkippedNonFinite"/>, <see cref="ConsecutiveNonFinite"/> and the step
    /// counts of gated steps that were skipped.
    /// </summary>
    public StepStatistics TakeStatistics(int unetNumber)
    {
        int i = unetNumber - 1;
        if (_lossSum[i] is { } sum)
        {
            double lossSum = sum.item<double>();
            long steps = _stepCount[i]!.item<long>(), skips = _skipCount[i]!.item<long>();
            int consecutive = (int)_consecutive[i]!.item<long>();
            foreach (var t in new[] { sum, _stepCount[i]!, _skipCount[i]! }) t.zero_();
            Steps[i] -= skips;
            SkippedNonFinite += skips;
            ConsecutiveNonFinite = consecutive;
            if (skips > 0) Ema?[i].Resync();
            _hostLossSum[i] += lossSum;
            _hostSteps[i] += steps;
            _hostSkips[i] += skips;
        }
        var result = new StepStatistics(_hostSteps[i] > 0 ? _hostLossSum[i] / _hostSteps[i] : double.NaN, _hostSteps[i], _hostSkips[i]);
        (_hostLossSum[i], _hostSteps[i], _hostSkips[i]) = (0, 0, 0);
        return result;
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
        foreach (var t in _lossSum.Concat(_stepCount).Concat(_skipCount).Concat(_consecutive)) t?.Dispose();
        if (Ema is not null) foreach (var e in Ema) e.Dispose();
    }
}
