using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// Exponential moving average of a unet with ema-pytorch's schedule and state_dict layout
/// (`initted`, `step`, `online_model.*`, `ema_model.*`), so upstream checkpoints' `ema` entries map.
/// The decay warms up as 1 − (1 + e/inv_gamma)^(−power) with e = step − update_after_step − 1,
/// capped at beta; every update_every-th call averages (before update_after_step it copies).
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

    public UnetEma(Unet online, double beta = 0.9999, int updateAfterStep = 100, int updateEvery = 10,
                   double invGamma = 1.0, double power = 2.0 / 3.0, double minValue = 0.0) : base(nameof(UnetEma))
    {
        Beta = beta;
        UpdateAfterStep = updateAfterStep;
        UpdateEvery = updateEvery;
        InvGamma = invGamma;
        Power = power;
        MinValue = minValue;
        initted = tensor(false);
        step = tensor(0L);
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
        if (!initted.item<bool>())
        {
            CopyOnlineToEma();
            initted.fill_(true);
            return;
        }
        if (s % UpdateEvery != 0) return;
        if (s <= UpdateAfterStep)
        {
            CopyOnlineToEma();
            return;
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
