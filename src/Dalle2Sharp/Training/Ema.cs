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
/// Attached to a <see cref="FlatAdamW"/>, the averaged copies of the optimizer's flat members are views into one buffer
/// laid out as the optimizer's, so an update is one lerp. The schedule runs on a host copy of the step count (no device
/// read per step); with a gate (the GPU path's non-finite guard) an update applies only where the gate holds, and
/// <see cref="Resync"/> re-reads the counts.
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

    private long _hostStep;
    private bool _hostInitted;
    private (Tensor Online, Tensor Averaged, HashSet<IntPtr> Members)? _flat;

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
        double e = Math.Max(_hostStep - UpdateAfterStep - 1, 0);
        if (e <= 0) return 0.0;
        return Math.Clamp(1 - Math.Pow(1 + e / InvGamma, -Power), MinValue, Beta);
    }

    /// <summary>Re-reads the step count and initted flag from the state tensors (after loading them, or after gated updates).</summary>
    public void Resync()
    {
        _hostStep = step.item<long>();
        _hostInitted = initted.item<float>() != 0;
    }

    /// <summary>Makes the averaged copies of the optimizer's flat members views into one buffer in the same layout.</summary>
    public void AttachTo(FlatAdamW optimizer)
    {
        if (optimizer.FlatParameters is not { } online || ReferenceEquals(_flat?.Online, online)) return;
        using var _ = no_grad();
        var averagedOf = online_model.parameters().Zip(ema_model.parameters()).ToDictionary(x => x.First.Handle, x => x.Second);
        var averaged = empty_like(online).DetachFromDisposeScope();
        long offset = 0;
        var members = new HashSet<IntPtr>();
        foreach (var p in optimizer.Members)
        {
            var target = averagedOf[p.Handle];
            long n = target.numel();
            using var view = averaged.narrow(0, offset, n).view(target.shape);
            view.copy_(target);
            target.set_(view);
            members.Add(p.Handle);
            offset += n;
        }
        _flat?.Averaged.Dispose();
        _flat = (online, averaged, members);
    }

    /// <summary>One call of ema-pytorch's update(); with a gate, it acts only where the gate (0-dim bool) is true.</summary>
    public void Update(Tensor? gate = null)
    {
        long s = _hostStep++;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (gate is null) step.add_(1);
        else step.add_(gate.to(int64));
        if (s % UpdateEvery != 0) return;
        if (s <= UpdateAfterStep)
        {
            CopyOnlineToEma(gate);
            return;
        }
        if (!_hostInitted)
        {
            CopyOnlineToEma(gate);
            if (gate is null) initted.fill_(1);
            else initted.copy_(maximum(initted, gate.to(initted.dtype)));
            _hostInitted = true;
        }
        double weight = 1 - CurrentDecay();
        foreach (var (averaged, online) in Pairs())
        {
            if (!averaged.is_floating_point()) continue;
            if (gate is null) averaged.lerp_(online, weight);
            else averaged.lerp_(online, gate.to(averaged.dtype) * weight);
        }
    }

    /// <summary>(averaged, online) pairs: the two flat buffers when attached, then every parameter outside them.</summary>
    private IEnumerable<(Tensor Averaged, Tensor Online)> Pairs()
    {
        if (_flat is { } flat) yield return (flat.Averaged, flat.Online);
        foreach (var (averaged, online) in ema_model.parameters().Zip(online_model.parameters()))
            if (_flat is null || !_flat.Value.Members.Contains(online.Handle)) yield return (averaged, online);
    }

    private void CopyOnlineToEma(Tensor? gate)
    {
        foreach (var (averaged, online) in Pairs())
            if (gate is null) averaged.copy_(online);
            else averaged.copy_(where(gate, online, averaged));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _flat?.Averaged.Dispose();
        base.Dispose(disposing);
    }
}
