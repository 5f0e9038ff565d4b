using System.Collections;
using System.Collections.Specialized;
using Dalle2Sharp.Models;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// Checkpoints as PyTorch pickles in DALLE2-pytorch's layout (spec Appendix B): `model` (decoder
/// state dict), `version`, `steps`, `optim{i}` / `sched{i}` (PyTorch's AdamW and LambdaLR state-dict
/// shapes), `ema` (`{i}.initted`, `{i}.step`, `{i}.online_model.*`, `{i}.ema_model.*`) and any extras
/// (epoch, sample, config, ...). Written atomically: a temporary file in the same folder, flushed to
/// disk, then renamed over the target, so a kill at any instant leaves the previous good file.
/// </summary>
public static class Checkpoint
{
    /// <summary>The upstream version whose layout these files follow (upstream compares it on load).</summary>
    public const string UpstreamVersion = "1.15.6";

    public static void Save(string path, DecoderTrainer trainer, IDictionary<string, object?>? extras = null)
    {
        var root = new OrderedDictionary
        {
            ["model"] = StateDict(trainer.Decoder, trainer),
            ["version"] = UpstreamVersion,
            ["steps"] = tensor(trainer.Steps),
        };
        for (int i = 0; i < trainer.Decoder.NumUnets; i++)
        {
            var optimizer = trainer.Optimizer(i + 1);
            root[$"optim{i}"] = optimizer is null ? null : OptimizerState(optimizer);
            root[$"sched{i}"] = optimizer is null ? null : SchedulerState(optimizer, trainer.Steps[i]);
        }
        if (trainer.Ema is { } ema)
        {
            var emaState = new OrderedDictionary();
            for (int i = 0; i < ema.Count; i++)
                foreach (var (key, value) in ema[i].state_dict()) emaState[$"{i}.{key}"] = trainer.Float32(value);
            root["ema"] = emaState;
        }
        if (extras is not null)
            foreach (var (key, value) in extras) root[key] = value;
        Runtime.TorchFiles.SaveStateDict(path, root);
    }

    /// <summary>
    /// Loads a checkpoint (ours or DALLE2-pytorch's), a `model`-type file, or a plain decoder state
    /// dict. Model weights must match the decoder's keys and shapes exactly; otherwise the error lists
    /// what is missing, unexpected or of another shape. Returns the file's top-level entries.
    /// </summary>
    public static Hashtable Load(string path, DecoderTrainer trainer, bool onlyModel = false)
    {
        Hashtable root;
        try { root = PyTorchUnpickler.UnpickleStateDict(path); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new UserInputException($"{path} is not a readable PyTorch checkpoint: {e.Message}", e);
        }
        var model = root["model"] as IDictionary ?? (root.Values.Cast<object?>().All(v => v is Tensor) ? root : null)
            ?? throw new UserInputException($"{path} has neither a 'model' entry nor plain weights");
        // Upstream's train_decoder.py replaces unets outside unet_training_mask by nn.Identity: their
        // weights are absent from its checkpoints, and ours load the same way.
        var untrained = Enumerable.Range(0, trainer.Decoder.NumUnets).Where(i => !trainer.Trained[i]).ToArray();
        LoadInto(trainer.Decoder, model, path, untrained.Select(i => $"unets.{i}.").ToArray(), trainer);
        if (root["steps"] is Tensor steps)
            for (int i = 0; i < trainer.Steps.Length && i < steps.numel(); i++) trainer.Steps[i] = steps[i].item<long>();
        if (onlyModel) return root;

        for (int i = 0; i < trainer.Decoder.NumUnets; i++)
            if (trainer.Optimizer(i + 1) is { } optimizer && root[$"optim{i}"] is Hashtable state)
                LoadOptimizerState(optimizer, state, path, i);
        if (trainer.Ema is { } ema && root["ema"] is IDictionary emaState)
            for (int i = 0; i < ema.Count; i++)
            {
                var entries = Prefixed(emaState, $"{i}.");
                if (untrained.Contains(i) && !entries.Keys.Cast<string>().Any(k => k.StartsWith("ema_model.", StringComparison.Ordinal))) continue;
                LoadInto(ema[i], entries, path, trainer: trainer);
                ema[i].Resync();
            }
        else if (trainer.Ema is { } ema2 && root.ContainsKey("optim0"))
            throw new UserInputException($"{path} has no 'ema' entry, but train.use_ema is true");
        return root;
    }

    private static OrderedDictionary StateDict(nn.Module module, DecoderTrainer trainer)
    {
        var dict = new OrderedDictionary();
        foreach (var (key, value) in module.state_dict()) dict[key] = trainer.Float32(value);
        return dict;
    }

    private static IDictionary Prefixed(IDictionary source, string prefix)
    {
        var result = new Hashtable();
        foreach (DictionaryEntry e in source)
            if (e.Key is string k && k.StartsWith(prefix, StringComparison.Ordinal)) result[k[prefix.Length..]] = e.Value;
        return result;
    }

    /// <summary>
    /// Copies a state dict into a module, or lists every missing, unexpected or misshapen key. Keys under
    /// <paramref name="mayBeAbsent"/> may be missing (they keep their values). One-element tensors load
    /// whether 0-dim or [1] (ema-pytorch changed `initted`/`step` from [1] to 0-dim).
    /// </summary>
    private static void LoadInto(nn.Module module, IDictionary source, string path, IReadOnlyList<string>? mayBeAbsent = null,
                                 DecoderTrainer? trainer = null)
    {
        var target = module.state_dict();
        bool Optional(string key) => mayBeAbsent?.Any(p => key.StartsWith(p, StringComparison.Ordinal)) == true;
        static bool Fits(Tensor given, Tensor target) =>
            given.shape.SequenceEqual(target.shape) || (given.numel() == 1 && target.numel() == 1 && given.dim() <= 1 && target.dim() <= 1);
        var problems = new List<string>();
        foreach (var key in target.Keys.Where(k => !source.Contains(k) && !Optional(k))) problems.Add($"missing {key}");
        foreach (var key in source.Keys.Cast<string>().Where(k => !target.ContainsKey(k))) problems.Add($"unexpected {key}");
        foreach (var (key, tensorValue) in target)
            if (source[key] is Tensor given && !Fits(given, tensorValue))
                problems.Add($"{key}: checkpoint [{string.Join(", ", given.shape)}], model [{string.Join(", ", tensorValue.shape)}]");
        if (problems.Count > 0)
            throw new UserInputException($"{path} does not fit this model ({problems.Count} mismatches): " +
                string.Join("; ", problems.Take(20)) + (problems.Count > 20 ? $"; … {problems.Count - 20} more" : ""));
        using var _ = no_grad();
        foreach (var (key, tensorValue) in target)
            if (source[key] is Tensor given)
            {
                tensorValue.copy_(given.reshape(tensorValue.shape).to(tensorValue.dtype));
                // train.amp: the float32 master weights take the file's values exactly (the parameter holds them rounded).
                if (trainer?.Float32(tensorValue) is { } master && !ReferenceEquals(master, tensorValue))
                    master.copy_(given.reshape(master.shape).to(master.dtype));
            }
    }

    /// <summary>PyTorch's AdamW/Adam state_dict: per-parameter moments keyed by index across groups, then the groups.</summary>
    private static Hashtable OptimizerState(FlatAdamW optimizer)
    {
        var state = new Hashtable();
        var saved = optimizer.State();
        for (int index = 0; index < saved.Count; index++)
            if (saved[index] is { } s)
                state[index] = new Hashtable { ["step"] = tensor((float)s.Step), ["exp_avg"] = s.ExpAvg, ["exp_avg_sq"] = s.ExpAvgSq };
        var groups = new ArrayList();
        int next = 0;
        foreach (var group in optimizer.Groups)
        {
            int count = group.Parameters.Count;
            groups.Add(new Hashtable
            {
                ["lr"] = optimizer.LearningRate, ["betas"] = new object[] { optimizer.Betas.Beta1, optimizer.Betas.Beta2 },
                ["eps"] = optimizer.Eps, ["weight_decay"] = group.WeightDecay,
                ["amsgrad"] = false, ["maximize"] = false, ["foreach"] = null, ["capturable"] = false, ["differentiable"] = false, ["fused"] = null,
                ["initial_lr"] = optimizer.InitialLearningRate,
                ["params"] = new ArrayList(Enumerable.Range(next, count).ToArray()),
            });
            next += count;
        }
        return new Hashtable { ["state"] = state, ["param_groups"] = groups };
    }

    private static void LoadOptimizerState(FlatAdamW optimizer, Hashtable saved, string path, int unet)
    {
        var state = saved["state"] as IDictionary ?? new Hashtable();
        var parameters = optimizer.Groups.SelectMany(g => g.Parameters).ToList();
        var restored = new FlatAdamW.ParameterState?[parameters.Count];
        for (int index = 0; index < parameters.Count; index++)
        {
            object? key = state.Contains(index) ? index : state.Contains((long)index) ? (long)index : null;
            if (key is null || state[key] is not IDictionary entry) continue;
            long step = entry["step"] switch { Tensor t => (long)t.item<float>(), IConvertible c => c.ToInt64(null), _ => 0 };
            if (entry["exp_avg"] is not Tensor expAvg || entry["exp_avg_sq"] is not Tensor expAvgSq
                || expAvg.numel() != parameters[index].numel() || expAvgSq.numel() != parameters[index].numel())
                throw new UserInputException($"{path}: optim{unet} state {index} does not fit parameter {index} of this optimizer");
            restored[index] = new FlatAdamW.ParameterState(expAvg, expAvgSq, step);
        }
        optimizer.LoadState(restored);
    }

    /// <summary>LambdaLR (constant factor 1) state, as upstream's scheduler saves it.</summary>
    private static Hashtable SchedulerState(FlatAdamW optimizer, long steps)
    {
        var lrs = new ArrayList(optimizer.Groups.Select(_ => (object)optimizer.InitialLearningRate).ToArray());
        return new Hashtable
        {
            ["base_lrs"] = lrs, ["last_epoch"] = (int)steps, ["_step_count"] = (int)steps + 1, ["verbose"] = false,
            ["_get_lr_called_within_step"] = false,
            ["_last_lr"] = new ArrayList(optimizer.Groups.Select(_ => (object)optimizer.LearningRate).ToArray()),
            ["lr_lambdas"] = new ArrayList(lrs.Cast<object>().Select(_ => (object?)null).ToArray()),
        };
    }

}
