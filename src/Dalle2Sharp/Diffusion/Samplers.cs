using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Diffusion;

/// <summary>Which sampler runs a unet and with how many steps.</summary>
public sealed record SamplerSpec(string Kind, int? Steps = null, double Eta = 0.0)
{
    public static readonly string[] Kinds = ["ddpm", "ddim", "dpmpp"];
}

/// <summary>
/// A guided unet evaluation: (x_t, t, self-conditioning x0 or null) → raw unet output.
/// </summary>
public delegate Tensor GuidedModel(Tensor x, Tensor t, Tensor? selfCond);

/// <summary>Where a sampler's Gaussian draws come from (the seeded generator, or given tensors in tests).</summary>
public delegate Tensor NoiseSource(long[] shape);

/// <summary>
/// Sampling loops over one unet. Random numbers are drawn in upstream's order — the initial noise,
/// then one normal draw per step — from the given generator, so a seed reproduces DALLE2-pytorch's
/// images on CPU for the same weights. Each step runs in its own dispose scope.
/// </summary>
public static class Samplers
{
    public static Tensor Run(SamplerSpec spec, Denoiser d, GuidedModel model, long[] shape, bool clipDenoised, bool selfCond, Device device,
        Generator? generator) =>
        spec.Kind switch
        {
            "ddpm" => Ddpm(d, model, shape, clipDenoised, selfCond, device, generator),
            "ddim" => Ddim(d, model, shape, spec.Steps ?? d.Scheduler.NumTimesteps, spec.Eta, clipDenoised, selfCond, device, generator),
            "dpmpp" => DpmSolverPlusPlus2M(d, model, shape, spec.Steps ?? 25, clipDenoised, selfCond, device, generator),
            _ => throw new ArgumentException($"sampler \"{spec.Kind}\" is not one of {string.Join(", ", SamplerSpec.Kinds)}"),
        };

    /// <summary>Ancestral sampling through every timestep T−1 … 0 (noise drawn at every step, added where t &gt; 0).</summary>
    public static Tensor Ddpm(Denoiser d, GuidedModel model, long[] shape, bool clipDenoised, bool selfCond, Device device, Generator? generator,
                              NoiseSource? noiseSource = null)
    {
        var draw = noiseSource ?? (s => randn(s, device: device, generator: generator));
        var img = draw(shape);
        Tensor? xStart = null;
        for (int step = d.Scheduler.NumTimesteps - 1; step >= 0; step--)
        {
            using var scope = NewDisposeScope();
            var t = full(shape[0], step, dtype: int64, device: device);
            var output = model(img, t, selfCond ? xStart : null);
            var (mean, _, logVariance, x0) = d.PMeanVariance(img, t, output, clipDenoised);
            var noise = draw(shape);
            var next = step > 0 ? mean + (0.5 * logVariance).exp() * noise : mean;
            Swap(ref img, next.MoveToOuterDisposeScope());
            Replace(ref xStart, x0.MoveToOuterDisposeScope());
        }
        xStart?.Dispose();
        return img;
    }

    /// <summary>
    /// Upstream's DDIM time grid: int(linspace(0, T, steps + 2)) without its last point, reversed,
    /// consecutive pairs with t &gt; t_next (e.g. T = 10, 4 steps → (8,6), (6,4), (4,2), (2,0)).
    /// </summary>
    public static IReadOnlyList<(int T, int Next)> DdimTimePairs(int timesteps, int steps)
    {
        using var grid = linspace(0, timesteps, steps + 2, dtype: float32);
        var times = grid.data<float>().ToArray()[..^1].Select(v => (int)v).Reverse().ToArray();
        return times.Zip(times.Skip(1)).Where(p => p.First > p.Second).ToArray();
    }

    public static Tensor Ddim(Denoiser d, GuidedModel model, long[] shape, int steps, double eta, bool clipDenoised, bool selfCond, Device device,
                              Generator? generator, NoiseSource? noiseSource = null)
    {
        var draw = noiseSource ?? (s => randn(s, device: device, generator: generator));
        var ac = d.Scheduler.Buffer("alphas_cumprod");
        var img = draw(shape);
        Tensor? xStart = null;
        foreach (var (time, timeNext) in DdimTimePairs(d.Scheduler.NumTimesteps, steps))
        {
            using var scope = NewDisposeScope();
            var alpha = ac[time];
            var alphaNext = ac[timeNext];
            var t = full(shape[0], time, dtype: int64, device: device);
            var (prediction, _) = d.Split(model(img, t, selfCond ? xStart : null));
            var x0 = d.XStart(img, t, prediction);
            if (clipDenoised) x0 = d.Threshold(x0);
            var predNoise = d.Scheduler.PredictNoiseFromStart(img, t, x0);
            var c1 = eta * ((1 - alpha / alphaNext) * (1 - alphaNext) / (1 - alpha)).sqrt();
            var c2 = ((1 - alphaNext) - c1.square()).sqrt();
            var next = x0 * alphaNext.sqrt() + c2 * predNoise;
            if (timeNext > 0) next = next + c1 * draw(shape);
            Swap(ref img, next.MoveToOuterDisposeScope());
            Replace(ref xStart, x0.MoveToOuterDisposeScope());
        }
        xStart?.Dispose();
        return img;
    }

    /// <summary>
    /// DPM-Solver++(2M) (Lu et al. 2022), data-prediction multistep solver of the probability-flow
    /// ODE on the model's discrete ᾱ schedule: <paramref name="steps"/> unet evaluations on an even
    /// grid from T−1 to 0, second order except for the first and the last step. Deterministic after
    /// the initial noise.
    /// </summary>
    public static Tensor DpmSolverPlusPlus2M(Denoiser d, GuidedModel model, long[] shape, int steps, bool clipDenoised, bool selfCond,
        Device device, Generator? generator)
    {
        var grid = DpmSolverGrid(d.Scheduler.NumTimesteps, steps);
        steps = grid.Length - 1;
        var acValues = d.Scheduler.Buffer("alphas_cumprod").to(float64).cpu().data<double>().ToArray();
        double Alpha(int t) => Math.Sqrt(acValues[t]);
        double Sigma(int t) => Math.Sqrt(1 - acValues[t]);
        double Lambda(int t) => Math.Log(Alpha(t) / Sigma(t));

        var img = randn(shape, device: device, generator: generator);
        Tensor? previousX0 = null;
        double? previousH = null;
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            int s = grid[i], t = grid[i + 1];
            var ts = full(shape[0], s, dtype: int64, device: device);
            var (prediction, _) = d.Split(model(img, ts, selfCond ? previousX0 : null));
            var x0 = d.XStart(img, ts, prediction);
            if (clipDenoised) x0 = d.Threshold(x0);

            double h = Lambda(t) - Lambda(s);
            var data = x0;
            bool secondOrder = previousX0 is not null && previousH is not null && i < steps - 1;
            if (secondOrder)
            {
                double r = previousH!.Value / h;
                data = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previousX0!;
            }
            var next = (Sigma(t) / Sigma(s)) * img - Alpha(t) * (Math.Exp(-h) - 1) * data;
            previousH = h;
            Swap(ref img, next.MoveToOuterDisposeScope());
            Replace(ref previousX0, x0.MoveToOuterDisposeScope());
        }
        previousX0?.Dispose();
        return img;
    }

    /// <summary>
    /// The solver's time grid: <paramref name="steps"/> + 1 points evenly from T−1 to 0, rounded to
    /// timesteps, repeated timesteps dropped (a repeat is a zero-length step: λ(t) − λ(s) = 0 divides the
    /// second-order correction by zero). With steps ≥ T the grid is every timestep, T − 1 steps.
    /// </summary>
    public static int[] DpmSolverGrid(int timesteps, int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "sampling steps must be at least 1");
        if (timesteps < 2) throw new ArgumentOutOfRangeException(nameof(timesteps), timesteps, "DPM-Solver++ needs at least 2 timesteps");
        steps = Math.Min(steps, timesteps - 1);
        return Enumerable.Range(0, steps + 1)
            .Select(i => (int)Math.Round((timesteps - 1) * (1.0 - (double)i / steps)))
            .Distinct().ToArray();
    }

    private static void Replace(ref Tensor? slot, Tensor value)
    {
        slot?.Dispose();
        slot = value;
    }

    private static void Swap(ref Tensor slot, Tensor value)
    {
        slot.Dispose();
        slot = value;
    }
}
