using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// Exponential moving average of a unet as ema-pytorch 0.2.4 (the version DALLE2-pytorch 1.15.6 ran
/// with) computes it and lays out its state: `initted` float32 [1], `step` int64 [1], `online_model.*`,
/// `ema_model.*` — so upstream's DecoderTrainer loads our `ema` entries and we load its (newer
/// ema-pytorch's 0-dim `initted`/`step` load too). The decay warms up as 1 − (1 + e/inv_gamma)^(−power)
/// with e = step − update_after_step − 1, capped at beta; only every update_every-th call acts: up to
/// update_after_step it copies, after it the first call copies and then averages (0.2.4's order).
/// </summary>
public sealed class UnetEma : nn.Module
{
    private readonly Tensor initted;
    private readonly Tensor step;
    private readonly Unet online_model;
    private readonly Unet ema_model;

    public double Beta { get; }
    public int UpdateAfterStep { get; }
    public int UpdateEvery { get; }
    public double InvGamma { get; }
    public double Power { get; }
    public double MinValue { get; }

    public Unet Averaged => ema_model;
    public long Step => step.item<long>();
    private bool Initted => initted.item<float>() != 0;

    public UnetEma(Unet online, double beta = 0.9999, int updateAfterStep = 100, int updateEvery = 10,
                   double invGamma = 1.0, double power = 2.0 / 3.0, double minValue = 0.0) : base(nameof(UnetEma))
    {
        Beta = beta;
        UpdateAfterStep = updateAfterStep;
        UpdateEvery = updateEvery;
        InvGamma = invGamma;
        Power = power;
        MinValue = minValue;
        initted = zeros(1, dtype: float32);
        step = zeros(1, dtype: int64);
        online_model = online;
        ema_model = new Unet(online.Config);
        using (no_grad())
        {
            ema_model.load_state_dict(online.state_dict());
            foreach (var p in ema_model.parameters()) p.requires_grad = false;
        }
        ema_model.eval();
        RegisterComponents();
        ema_model.to(online.parameters().First().device);
    }

    /// <summary>The decay that an update at the current step uses.</summary>
    public double CurrentDecay()
    {
        double e = Math.Max(Step - UpdateAfterStep - 1, 0);
        if (e <= 0) return 0.0;
        return Math.Clamp(1 - Math.Pow(1 + e / InvGamma, -Power), MinValue, Beta);
    }

    public void Update()
    {
        long s = Step;
        using var _ = no_grad();
        step.add_(1);
        if (s % UpdateEvery != 0) return;
        if (s <= UpdateAfterStep)
        {
            CopyOnlineToEma();
            return;
        }
        if (!Initted)
        {
            CopyOnlineToEma();
            initted.fill_(1);
        }
        double decay = CurrentDecay();
        foreach (var (ema, online) in ema_model.parameters().Zip(online_model.parameters()))
            if (ema.is_floating_point()) ema.lerp_(online, 1 - decay);
    }

    private void CopyOnlineToEma()
    {
        foreach (var (ema, online) in ema_model.parameters().Zip(online_model.parameters()))
            ema.copy_(online);
    }
}
