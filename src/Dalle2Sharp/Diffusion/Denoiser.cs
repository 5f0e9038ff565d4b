using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Diffusion;

/// <summary>
/// How one unet's raw output is read: which channels are the prediction and which the variance
/// interpolation, what the prediction means (ε, x0 or v), thresholding, and the resulting posterior.
/// </summary>
public sealed class Denoiser(NoiseScheduler scheduler, int channels, bool learnedVariance, bool predictXStart, bool predictV,
                             bool learnedVarianceConstrainFrac = false, bool useDynamicThres = false, double dynamicThresPercentile = 0.95)
{
    public NoiseScheduler Scheduler { get; } = scheduler;
    public int Channels { get; } = channels;
    public bool LearnedVariance { get; } = learnedVariance;
    public bool PredictXStart { get; } = predictXStart;
    public bool PredictV { get; } = predictV;

    public (Tensor Prediction, Tensor? VarianceFraction) Split(Tensor output)
    {
        if (!LearnedVariance) return (output, null);
        var parts = output.split(Channels, 1);
        return (parts[0], parts[1]);
    }

    /// <summary>x0 from the prediction, as the unet is parameterised (v takes precedence over x0, ε otherwise).</summary>
    public Tensor XStart(Tensor x, Tensor t, Tensor prediction, bool? predictXStart = null, bool? predictV = null) =>
        predictV ?? PredictV ? Scheduler.PredictStartFromV(x, t, prediction)
        : predictXStart ?? PredictXStart ? prediction
        : Scheduler.PredictStartFromNoise(x, t, prediction);

    /// <summary>Static clamp to [-1, 1], or Imagen's dynamic thresholding at a per-sample percentile of |x0|.</summary>
    public Tensor Threshold(Tensor x0)
    {
        if (!useDynamicThres) return x0.clamp(-1, 1);
        // dim 1, not -1: TorchSharp's quantile takes dim -1 for "no dimension" (one threshold for the whole batch).
        var s = quantile(x0.reshape(x0.shape[0], -1).abs(), tensor(dynamicThresPercentile, dtype: x0.dtype, device: x0.device), dim: 1)
            .clamp(min: 1.0);
        s = s.reshape(-1, 1, 1, 1);
        return x0.clamp(-s, s) / s;
    }

    /// <summary>
    /// Mean and (log-)variance of p(x_{t−1} | x_t) from a unet output. With a learned variance the
    /// log-variance interpolates between the clipped posterior and β_t by (v + 1)/2.
    /// <paramref name="predictXStart"/>/<paramref name="predictV"/> override the parameterisation
    /// (upstream's VLB term always reads the output as ε).
    /// </summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor XStart) PMeanVariance(
        Tensor x, Tensor t, Tensor output, bool clipDenoised, bool? predictXStart = null, bool? predictV = null)
    {
        var (prediction, fraction) = Split(output);
        var x0 = XStart(x, t, prediction, predictXStart, predictV);
        if (clipDenoised) x0 = Threshold(x0);
        var (mean, variance, logVariance) = Scheduler.QPosterior(x0, x, t);
        if (fraction is not null)
        {
            var minLog = Scheduler.Extract("posterior_log_variance_clipped", t, x.dim());
            var maxLog = Scheduler.Extract("betas", t, x.dim()).log();
            var frac = (fraction + 1) * 0.5;
            if (learnedVarianceConstrainFrac) frac = frac.sigmoid();
            logVariance = frac * maxLog + (1 - frac) * minLog;
            variance = logVariance.exp();
        }
        return (mean, variance, logVariance, x0);
    }
}
