using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Diffusion;

/// <summary>
/// The Gaussian diffusion process of one unet: beta schedule, the 13 derived buffers (persistent,
/// float32, registered with DALLE2-pytorch's names and order so they appear in state_dict), the
/// training loss, and the conversions between x0, ε and v.
/// </summary>
public sealed class NoiseScheduler : nn.Module
{
    public static readonly string[] BufferNames =
    [
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "p2_loss_weight",
    ];

    public int NumTimesteps { get; }
    public string LossType { get; }
    public double P2LossWeightGamma { get; }
    public bool HasP2LossReweighting => P2LossWeightGamma > 0;

    public NoiseScheduler(string betaSchedule, int timesteps, string lossType, double p2LossWeightGamma = 0.0, double p2LossWeightK = 1.0)
        : base(nameof(NoiseScheduler))
    {
        if (lossType is not ("l1" or "l2" or "huber")) throw new ArgumentException($"loss_type \"{lossType}\" is not one of l1, l2, huber");
        LossType = lossType;
        P2LossWeightGamma = p2LossWeightGamma;
        NumTimesteps = timesteps;

        using var scope = NewDisposeScope();
        var betas = Schedules.Betas(betaSchedule, timesteps);
        var alphas = 1.0 - betas;
        var ac = alphas.cumprod(0);
        var acPrev = nn.functional.pad(ac[..^1], [1, 0], value: 1.0);
        var posteriorVariance = betas * (1.0 - acPrev) / (1.0 - ac);

        Tensor[] values =
        [
            betas, ac, acPrev, ac.sqrt(), (1.0 - ac).sqrt(), (1.0 - ac).log(), (1.0 / ac).sqrt(), (1.0 / ac - 1).sqrt(),
            posteriorVariance, posteriorVariance.clamp(min: 1e-20).log(),
            betas * acPrev.sqrt() / (1.0 - ac), (1.0 - acPrev) * alphas.sqrt() / (1.0 - ac),
            (p2LossWeightK + ac / (1.0 - ac)).pow(-p2LossWeightGamma),
        ];
        for (int i = 0; i < BufferNames.Length; i++)
            register_buffer(BufferNames[i], values[i].to(float32).MoveToOuterDisposeScope());
    }

    public Tensor Buffer(string name) => get_buffer(name)!;

    /// <summary>buf[t] per batch element, shaped to broadcast over an image batch of <paramref name="ndim"/> dims.</summary>
    public Tensor Extract(string name, Tensor t, long ndim = 4)
    {
        var values = Buffer(name).gather(-1, t);
        var shape = new long[ndim];
        Array.Fill(shape, 1L);
        shape[0] = t.shape[0];
        return values.reshape(shape);
    }

    public Tensor SampleRandomTimes(long batch, Generator? generator = null, Device? device = null) =>
        randint(0, NumTimesteps, [batch], dtype: int64, device: device, generator: generator);

    public Tensor QSample(Tensor xStart, Tensor t, Tensor noise) =>
        Extract("sqrt_alphas_cumprod", t, xStart.dim()) * xStart + Extract("sqrt_one_minus_alphas_cumprod", t, xStart.dim()) * noise;

    public Tensor CalculateV(Tensor xStart, Tensor t, Tensor noise) =>
        Extract("sqrt_alphas_cumprod", t, xStart.dim()) * noise - Extract("sqrt_one_minus_alphas_cumprod", t, xStart.dim()) * xStart;

    public Tensor PredictStartFromV(Tensor xT, Tensor t, Tensor v) =>
        Extract("sqrt_alphas_cumprod", t, xT.dim()) * xT - Extract("sqrt_one_minus_alphas_cumprod", t, xT.dim()) * v;

    public Tensor PredictStartFromNoise(Tensor xT, Tensor t, Tensor noise) =>
        Extract("sqrt_recip_alphas_cumprod", t, xT.dim()) * xT - Extract("sqrt_recipm1_alphas_cumprod", t, xT.dim()) * noise;

    public Tensor PredictNoiseFromStart(Tensor xT, Tensor t, Tensor x0) =>
        (Extract("sqrt_recip_alphas_cumprod", t, xT.dim()) * xT - x0) / Extract("sqrt_recipm1_alphas_cumprod", t, xT.dim());

    /// <summary>Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x0).</summary>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance) QPosterior(Tensor xStart, Tensor xT, Tensor t)
    {
        long n = xT.dim();
        var mean = Extract("posterior_mean_coef1", t, n) * xStart + Extract("posterior_mean_coef2", t, n) * xT;
        return (mean, Extract("posterior_variance", t, n), Extract("posterior_log_variance_clipped", t, n));
    }

    /// <summary>Re-noises x from step from_t to step to_t (RePaint-style resampling).</summary>
    public Tensor QSampleFromTo(Tensor xFrom, Tensor fromT, Tensor toT, Tensor noise)
    {
        long n = xFrom.dim();
        var alpha = Extract("sqrt_alphas_cumprod", fromT, n);
        var sigma = Extract("sqrt_one_minus_alphas_cumprod", fromT, n);
        var alphaNext = Extract("sqrt_alphas_cumprod", toT, n);
        var sigmaNext = Extract("sqrt_one_minus_alphas_cumprod", toT, n);
        return xFrom * (alphaNext / alpha) + noise * (sigmaNext * alpha - sigma * alphaNext) / alpha;
    }

    /// <summary>Element-wise loss (reduction none), as the decoder uses it.</summary>
    public Tensor Loss(Tensor prediction, Tensor target) => LossType switch
    {
        "l1" => nn.functional.l1_loss(prediction, target, nn.Reduction.None),
        "l2" => nn.functional.mse_loss(prediction, target, nn.Reduction.None),
        _ => nn.functional.smooth_l1_loss(prediction, target, nn.Reduction.None, beta: 1.0),
    };

    /// <summary>Multiplies a per-sample loss by the P2 weight of its timestep (identity when γ = 0).</summary>
    public Tensor P2ReweighLoss(Tensor loss, Tensor t) =>
        HasP2LossReweighting ? loss * Extract("p2_loss_weight", t, loss.dim()) : loss;
}
