using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// AdamW (Adam when a group's weight decay is 0) with the arithmetic of PyTorch 1.13's single-tensor AdamW — the
/// optimizer upstream's DecoderTrainer steps — and torch's clip_grad_norm_, over flat buffers: once the first backward
/// shows which parameters get gradients, those parameters and their gradients become views into one flat buffer each
/// (laid out group by group), so an update is a dozen whole-buffer kernels instead of a dozen per parameter
/// (≈ 4,800 TorchSharp calls and native Scalars per step for the test-config Unet). Backward accumulates into the
/// gradient views in place (autograd adds into a defined .grad when not building a graph), and zeroing keeps them
/// zero-filled, as torch 1.13's zero_grad does — so, as upstream, a parameter that once had a gradient is stepped
/// every step. A parameter whose first gradient comes later is stepped on its own with its own step count, as torch
/// does. Elementwise kernels give the same numbers as per-tensor ones except that the flat norm sums in another order
/// and a vectorised kernel's tail falls elsewhere (a few ulps; tested against torch 1.13's numbers).
/// With a gate (a 0-dim bool tensor on the device) the update applies only where the gate is true, without reading it
/// on the host: the GPU path's non-finite guard needs no synchronisation.
/// Mixed precision (train.amp): given float32 master values for bfloat16 parameters, every parameter is a member from
/// the start; gradients are taken to float32, clipped and applied to the float32 master copy, which is then cast back
/// into the bfloat16 parameters — bfloat16 compute, float32 weights and moments.
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    /// <summary>A parameter group as upstream makes them: its parameters and weight decay.</summary>
    public sealed record Group(IReadOnlyList<Parameter> Parameters, double WeightDecay);

    /// <summary>One parameter's optimizer state (views into the flat buffers for members of the layout).</summary>
    public sealed record ParameterState(Tensor ExpAvg, Tensor ExpAvgSq, long Step);

    private const double ClipEpsilon = 1e-6;   // torch.nn.utils.clip_grad_norm_: max_norm / (total_norm + 1e-6)

    private sealed class Moments(Tensor expAvg, Tensor expAvgSq, long step) : IDisposable
    {
        public Tensor ExpAvg { get; } = expAvg;
        public Tensor ExpAvgSq { get; } = expAvgSq;
        public long Step { get; set; } = step;
        /// <summary>The step count on the device when updates are gated (the host count is then an upper bound).</summary>
        public Tensor? DeviceStep { get; set; }
        public long CurrentStep => DeviceStep is { } d ? (long)d.item<double>() : Step;
        public void Dispose() { ExpAvg.Dispose(); ExpAvgSq.Dispose(); DeviceStep?.Dispose(); }
    }

    private sealed class Layout : IDisposable
    {
        public required Tensor Parameters, Gradients;
        public required Moments Moments;
        public required (long Start, long Length)[] GroupRanges;
        public required Dictionary<IntPtr, (long Offset, long Count)> Members;
        /// <summary>Float32 master weights when the parameters are in a lower precision (train.amp), else null.</summary>
        public Tensor? Master;
        /// <summary>This step's float32 gradients in master mode (made by ClipGradNorm, used by Step).</summary>
        public Tensor? Float32Gradients;
        public void Dispose() { Parameters.Dispose(); Gradients.Dispose(); Moments.Dispose(); Master?.Dispose(); Float32Gradients?.Dispose(); }
    }

    private readonly Group[] _groups;
    private readonly double _beta1, _beta2, _eps;
    private Layout? _layout;
    private readonly Dictionary<IntPtr, Moments> _loose = new();

    public IReadOnlyList<Group> Groups => _groups;
    public double LearningRate { get; set; }
    public double InitialLearningRate { get; }
    public (double Beta1, double Beta2) Betas => (_beta1, _beta2);
    public double Eps => _eps;

    /// <summary>
    /// The flat float32 weights (null until the layout exists): the parameters' own buffer, or in mixed precision the
    /// master copy. <see cref="Members"/> are the parameters it holds, in order.
    /// </summary>
    public Tensor? FlatParameters => _layout?.Master ?? _layout?.Parameters;
    public bool HasFloat32Master => _layout?.Master is not null;
    public Tensor? FlatGradients => _layout?.Gradients;
    public IEnumerable<Parameter> Members => _groups.SelectMany(g => g.Parameters).Where(p => _layout?.Members.ContainsKey(p.Handle) == true);

    public FlatAdamW(IEnumerable<Group> groups, double lr, double beta1 = 0.9, double beta2 = 0.99, double eps = 1e-8,
                     IReadOnlyList<Tensor>? float32Master = null)
    {
        _groups = groups.ToArray();
        LearningRate = InitialLearningRate = lr;
        (_beta1, _beta2, _eps) = (beta1, beta2, eps);
        if (float32Master is null) return;
        // Mixed precision: the layout now (the first forward already runs in the low precision), master from the float32 values.
        var all = All().ToList();
        if (float32Master.Count != all.Count) throw new ArgumentException($"{float32Master.Count} master values for {all.Count} parameters");
        BuildLayout(all.Select(x => x.P.Handle).ToHashSet(), step: 0);
        using var _ = no_grad();
        _layout!.Master = zeros(_layout.Parameters.numel(), device: all[0].P.device).DetachFromDisposeScope();
        foreach (var ((p, _), value) in all.Zip(float32Master)) MasterOf(p)!.copy_(value.reshape(-1));
        _layout.Parameters.copy_(_layout.Master);
    }

    /// <summary>The float32 master values of a member parameter (a view), in mixed precision; else null.</summary>
    public Tensor? MasterOf(Tensor parameter) =>
        _layout?.Master is { } master && _layout.Members.TryGetValue(parameter.Handle, out var range)
            ? master.narrow(0, range.Offset, range.Count) : null;

    /// <summary>Casts the master weights into the parameters (after master values were loaded).</summary>
    public void SyncParametersFromMaster()
    {
        using var _ = no_grad();
        if (_layout?.Master is { } master) _layout.Parameters.copy_(master);
    }

    private IEnumerable<(Parameter P, int Group)> All() => _groups.SelectMany((g, i) => g.Parameters.Select(p => (p, i)));

    /// <summary>
    /// Call after backward: on the first call, the parameters holding gradients become the flat layout; later, a
    /// parameter outside it that now has a gradient starts its own state.
    /// </summary>
    public void Prepare()
    {
        if (_layout is null)
        {
            var members = All().Where(x => !IsNull(x.P.grad)).ToList();
            if (members.Count > 0) BuildLayout(members.Select(m => m.P.Handle).ToHashSet(), step: 0);
            return;
        }
        foreach (var (p, _) in All())
            if (!_layout.Members.ContainsKey(p.Handle) && !_loose.ContainsKey(p.Handle) && !IsNull(p.grad))
                _loose[p.Handle] = NewMoments(p, step: 0);
    }

    private static bool IsNull(Tensor? t) { bool isNull = t is null; t?.Dispose(); return isNull; }

    private static Moments NewMoments(Parameter p, long step) =>
        new(zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope(), step);

    /// <summary>Moves the members' data and gradients into flat buffers and makes them views of those.</summary>
    private void BuildLayout(HashSet<IntPtr> members, long step)
    {
        using var _ = no_grad();
        var ordered = All().Where(x => members.Contains(x.P.Handle)).ToList();
        long total = ordered.Sum(x => x.P.numel());
        var first = ordered[0].P;
        var flatParams = empty(total, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        var flatGrads = zeros(total, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        var offsets = new Dictionary<IntPtr, (long, long)>();
        var ranges = new (long Start, long Length)[_groups.Length];
        long offset = 0;
        for (int gi = 0; gi < _groups.Length; gi++)
        {
            long start = offset;
            foreach (var (p, _) in ordered.Where(x => x.Group == gi))
            {
                long n = p.numel();
                using var dataView = flatParams.narrow(0, offset, n).view(p.shape);
                dataView.copy_(p);
                using (var g = p.grad) if (g is not null) flatGrads.narrow(0, offset, n).copy_(g.flatten());
                p.set_(dataView);
                p.grad = flatGrads.narrow(0, offset, n).view(p.shape);
                offsets[p.Handle] = (offset, n);
                offset += n;
            }
            ranges[gi] = (start, offset - start);
        }
        _layout = new Layout
        {
            Parameters = flatParams, Gradients = flatGrads, GroupRanges = ranges, Members = offsets,
            Moments = new Moments(zeros(total, device: first.device).DetachFromDisposeScope(),
                                  zeros(total, device: first.device).DetachFromDisposeScope(), step),
        };
    }

    private IEnumerable<(Parameter P, Moments M)> LooseParameters() =>
        All().Where(x => _loose.ContainsKey(x.P.Handle)).Select(x => (x.P, _loose[x.P.Handle]));

    /// <summary>Zero-fills every gradient (torch 1.13's zero_grad(set_to_none=False)).</summary>
    public void ZeroGrad()
    {
        using var _ = no_grad();
        _layout?.Gradients.zero_();
        foreach (var (p, _) in LooseParameters()) using (var g = p.grad) g?.zero_();
    }

    /// <summary>
    /// torch.nn.utils.clip_grad_norm_: the 2-norm of all gradients, and every gradient scaled by
    /// min(1, max / (norm + 1e-6)). Returns the norm as a 0-dim tensor on the device (no host read).
    /// </summary>
    public Tensor ClipGradNorm(double maxNorm)
    {
        using var _ = no_grad();
        var loose = LooseParameters().Select(x => x.P.grad!).ToList();
        var norms = new List<Tensor>();
        if (_layout?.Master is not null)
        {
            _layout.Float32Gradients?.Dispose();
            _layout.Float32Gradients = _layout.Gradients.to(ScalarType.Float32).DetachFromDisposeScope();
        }
        var flatGradients = _layout?.Float32Gradients ?? _layout?.Gradients;
        if (flatGradients is not null) norms.Add(flatGradients.norm());
        norms.AddRange(loose.Select(g => g.norm()));
        if (norms.Count == 0) return zeros(1).squeeze();
        var total = norms.Count == 1 ? norms[0] : stack(norms).norm();
        using var coefficient = (maxNorm / (total + ClipEpsilon)).clamp_max(1.0);
        flatGradients?.mul_(coefficient);
        foreach (var g in loose) g.mul_(coefficient);
        return total;
    }

    /// <summary>One AdamW step at <see cref="LearningRate"/>; with a gate, only where the gate is true.</summary>
    public void Step(Tensor? gate = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (_layout is { } layout)
            for (int gi = 0; gi < _groups.Length; gi++)
            {
                var (start, length) = layout.GroupRanges[gi];
                if (length == 0) continue;
                var weights = layout.Master ?? layout.Parameters;
                var gradients = layout.Master is null ? layout.Gradients
                    : layout.Float32Gradients ?? throw new InvalidOperationException("mixed precision: ClipGradNorm makes the float32 gradients");
                Update(weights.narrow(0, start, length), gradients.narrow(0, start, length),
                       layout.Moments.ExpAvg.narrow(0, start, length), layout.Moments.ExpAvgSq.narrow(0, start, length),
                       layout.Moments, _groups[gi].WeightDecay, gate);
            }
        foreach (var (p, m) in LooseParameters())
        {
            var wd = _groups[All().First(x => x.P.Handle == p.Handle).Group].WeightDecay;
            Update(p, p.grad!, m.ExpAvg, m.ExpAvgSq, m, wd, gate);
        }
        if (_layout is not null) Advance(_layout.Moments, gate);
        foreach (var m in _loose.Values) Advance(m, gate);
        if (_layout?.Master is { } master)
        {
            _layout.Parameters.copy_(master);
            _layout.Float32Gradients!.Dispose();
            _layout.Float32Gradients = null;
        }
    }

    private static void Advance(Moments m, Tensor? gate)
    {
        if (gate is null) { m.Step++; return; }
        m.DeviceStep ??= full(1, (double)m.Step, dtype: float64, device: gate.device).squeeze().DetachFromDisposeScope();
        m.DeviceStep.add_(gate.to(float64));
        m.Step++;
    }

    /// <summary>PyTorch 1.13's _single_tensor_adamw for one (flat) tensor; the step count is the one this update makes.</summary>
    private void Update(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, Moments moments, double weightDecay, Tensor? gate)
    {
        double lr = LearningRate;
        if (gate is null)
        {
            long step = moments.Step + 1;
            double biasCorrection1 = 1 - Math.Pow(_beta1, step), biasCorrection2 = 1 - Math.Pow(_beta2, step);
            if (weightDecay != 0) param.mul_(1 - lr * weightDecay);
            expAvg.mul_(_beta1).add_(grad, alpha: 1 - _beta1);
            expAvgSq.mul_(_beta2).addcmul_(grad, grad, value: 1 - _beta2);
            var denom = (expAvgSq.sqrt() / Math.Sqrt(biasCorrection2)).add_(_eps);
            param.addcdiv_(expAvg, denom, value: -lr / biasCorrection1);
            return;
        }
        // Gated: the same arithmetic into new tensors, the step count and bias corrections on the device, then kept only
        // where the gate holds (a skipped step leaves weights and moments exactly as they were).
        var deviceStep = (moments.DeviceStep ?? full(1, (double)moments.Step, dtype: float64, device: gate.device).squeeze()) + 1;
        var bc1 = 1 - full_like(deviceStep, _beta1).pow(deviceStep);
        var bc2Sqrt = (1 - full_like(deviceStep, _beta2).pow(deviceStep)).sqrt();
        var decayed = weightDecay != 0 ? param.mul(1 - lr * weightDecay) : param;
        var newAvg = expAvg.mul(_beta1).add_(grad, alpha: 1 - _beta1);
        var newAvgSq = expAvgSq.mul(_beta2).addcmul_(grad, grad, value: 1 - _beta2);
        var newDenom = (newAvgSq.sqrt() / bc2Sqrt.to(param.dtype)).add_(_eps);
        var newParam = decayed - newAvg / newDenom * (lr / bc1).to(param.dtype);
        param.copy_(where(gate, newParam, param));
        expAvg.copy_(where(gate, newAvg, expAvg));
        expAvgSq.copy_(where(gate, newAvgSq, expAvgSq));
    }

    /// <summary>Every gradient the optimizer steps on: the flat buffer, then each late member's (for averaging across ranks).</summary>
    public IEnumerable<Tensor> AllGradients()
    {
        if (_layout is not null) yield return _layout.Gradients;
        foreach (var (p, _) in LooseParameters()) yield return p.grad!.view(-1);
    }

    /// <summary>Rank 0's moments and step counts everywhere (the layouts must agree: same model, same checkpoint). Collective.</summary>
    public void Broadcast(Runtime.ICollectives collectives)
    {
        using var _ = no_grad();
        var moments = (_layout is null ? [] : new[] { _layout.Moments }).Concat(LooseParameters().Select(x => x.M)).ToList();
        using var steps = tensor(moments.Select(m => m.CurrentStep).ToArray());
        collectives.Broadcast(steps);
        var values = steps.data<long>().ToArray();
        for (int k = 0; k < moments.Count; k++)
        {
            collectives.Broadcast(moments[k].ExpAvg);
            collectives.Broadcast(moments[k].ExpAvgSq);
            moments[k].Step = values[k];
            moments[k].DeviceStep?.Dispose();
            moments[k].DeviceStep = null;
        }
        if (_layout?.Master is { } master)
        {
            collectives.Broadcast(master);
            _layout.Parameters.copy_(master);
        }
    }

    /// <summary>Every parameter's state in group order (null: never stepped), as torch's state_dict indexes it.</summary>
    public IReadOnlyList<ParameterState?> State()
    {
        var result = new List<ParameterState?>();
        long layoutStep = _layout?.Moments.CurrentStep ?? 0;
        foreach (var (p, _) in All())
        {
            if (_layout?.Members.TryGetValue(p.Handle, out var range) == true && layoutStep > 0)
                result.Add(new ParameterState(_layout.Moments.ExpAvg.narrow(0, range.Offset, range.Count).view(p.shape),
                                              _layout.Moments.ExpAvgSq.narrow(0, range.Offset, range.Count).view(p.shape), layoutStep));
            else if (_loose.TryGetValue(p.Handle, out var m) && m.CurrentStep > 0)
                result.Add(new ParameterState(m.ExpAvg, m.ExpAvgSq, m.CurrentStep));
            else
                result.Add(null);
        }
        return result;
    }

    /// <summary>
    /// Restores state saved by <see cref="State"/> (or by torch): the parameters with the most common step become the
    /// flat layout (before any backward), the others keep their own state; parameters without state start fresh.
    /// </summary>
    public void LoadState(IReadOnlyList<ParameterState?> state)
    {
        var all = All().Select(x => x.P).ToList();
        if (state.Count != all.Count) throw new ArgumentException($"optimizer state for {state.Count} parameters, this one has {all.Count}");
        if (_layout?.Master is not null)
        {
            LoadStateKeepingLayout(all, state);
            return;
        }
        _layout?.Dispose();
        _layout = null;
        foreach (var m in _loose.Values) m.Dispose();
        _loose.Clear();
        var stepped = all.Zip(state).Where(x => x.Second is not null).ToList();
        if (stepped.Count == 0) return;
        long common = stepped.GroupBy(x => x.Second!.Step).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).First().Key;
        BuildLayout(stepped.Where(x => x.Second!.Step == common).Select(x => x.First.Handle).ToHashSet(), common);
        using var _ = no_grad();
        foreach (var (p, s) in stepped)
        {
            if (s!.Step == common)
            {
                var (offset, count) = _layout!.Members[p.Handle];
                _layout.Moments.ExpAvg.narrow(0, offset, count).copy_(s.ExpAvg.reshape(count));
                _layout.Moments.ExpAvgSq.narrow(0, offset, count).copy_(s.ExpAvgSq.reshape(count));
            }
            else
            {
                var m = NewMoments(p, s.Step);
                m.ExpAvg.copy_(s.ExpAvg.reshape(p.shape));
                m.ExpAvgSq.copy_(s.ExpAvgSq.reshape(p.shape));
                _loose[p.Handle] = m;
            }
        }
    }

    /// <summary>Mixed precision: every parameter stays a member; the moments load in place, the step is the most common one.</summary>
    private void LoadStateKeepingLayout(List<Parameter> all, IReadOnlyList<ParameterState?> state)
    {
        using var _ = no_grad();
        var layout = _layout!;
        layout.Moments.ExpAvg.zero_();
        layout.Moments.ExpAvgSq.zero_();
        var stepped = all.Zip(state).Where(x => x.Second is not null).ToList();
        layout.Moments.Step = stepped.Count == 0 ? 0
            : stepped.GroupBy(x => x.Second!.Step).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).First().Key;
        layout.Moments.DeviceStep?.Dispose();
        layout.Moments.DeviceStep = null;
        foreach (var (p, s) in stepped)
        {
            var (offset, count) = layout.Members[p.Handle];
            layout.Moments.ExpAvg.narrow(0, offset, count).copy_(s!.ExpAvg.reshape(count));
            layout.Moments.ExpAvgSq.narrow(0, offset, count).copy_(s.ExpAvgSq.reshape(count));
        }
    }

    public void Dispose()
    {
        _layout?.Dispose();
        foreach (var m in _loose.Values) m.Dispose();
    }
}
