using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Evaluation;

/// <summary>
/// Learned Perceptual Image Patch Similarity (Zhang et al. 2018, the `lpips` package v0.1 as
/// torchmetrics uses it): scale the inputs, take backbone activations, unit-normalise them over
/// channels, weight the squared differences by the learned 1×1 heads, average over space, sum over
/// layers. Inputs in [-1, 1] (or [0, 1] with normalize).
/// </summary>
public sealed class Lpips : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly LpipsBackbone net;
    private readonly ModuleList<NetLinLayer> lins = new();
    private static readonly float[] Shift = [-0.030f, -0.088f, -0.188f];
    private static readonly float[] Scale = [0.458f, 0.448f, 0.450f];

    public Lpips(string netType) : base(nameof(Lpips))
    {
        net = LpipsBackbone.Create(netType);
        foreach (var c in net.TapChannels) lins.Add(new NetLinLayer(c));
        RegisterComponents();
        eval();
    }

    /// <summary>Backbone weights from a torchvision file (only its `features.*` are used) and the LPIPS heads from an lpips v0.1 file.</summary>
    public void LoadWeights(string backboneFile, string linearHeadsFile)
    {
        foreach (var (file, what) in new[] { (backboneFile, "backbone"), (linearHeadsFile, "LPIPS heads") })
            if (!File.Exists(file)) throw new UserInputException($"LPIPS {what} weights {file} not found");
        var backbone = Runtime.TorchFiles.LoadStateDict(backboneFile);
        var heads = Runtime.TorchFiles.LoadStateDict(linearHeadsFile);
        LoadMatching(net, backbone, "", backboneFile);
        // lpips' files name the heads lin0 … linN; here they sit in the list `lins`.
        var renamed = new System.Collections.Hashtable();
        foreach (System.Collections.DictionaryEntry e in heads)
            if (e.Key is string k && k.StartsWith("lin")) renamed["lins." + k[3..]] = e.Value;
        LoadMatching(this, renamed, "lins.", linearHeadsFile);
    }

    private static void LoadMatching(nn.Module module, System.Collections.IDictionary source, string prefix, string file)
    {
        using var _ = no_grad();
        foreach (var (key, target) in module.state_dict().Where(kv => kv.Key.StartsWith(prefix)))
        {
            if (source[key] is not Tensor given) throw new UserInputException($"{file} has no {key}");
            if (!given.shape.SequenceEqual(target.shape))
                throw new UserInputException($"{file}: {key} is [{string.Join(", ", given.shape)}], expected [{string.Join(", ", target.shape)}]");
            target.copy_(given);
        }
    }

    /// <summary>Per-image distance [N].</summary>
    public override Tensor forward(Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        var shift = tensor(Shift, device: x.device).reshape(1, 3, 1, 1);
        var scale = tensor(Scale, device: x.device).reshape(1, 3, 1, 1);
        var fx = net.forward((x - shift) / scale);
        var fy = net.forward((y - shift) / scale);
        Tensor total = zeros(x.shape[0], device: x.device);
        for (int k = 0; k < fx.Length; k++)
        {
            var diff = (Normalize(fx[k]) - Normalize(fy[k])).square();
            total = total + lins[k].forward(diff).mean([1, 2, 3]);
        }
        return total.MoveToOuterDisposeScope();
    }

    /// <summary>torchmetrics' LPIPS: mean or sum over the batch; normalize maps [0, 1] inputs to [-1, 1].</summary>
    public double Score(Tensor x, Tensor y, string reduction = "mean", bool normalize = false)
    {
        using var _ = no_grad();
        if (normalize) { x = x * 2 - 1; y = y * 2 - 1; }
        var d = forward(x, y);
        return (reduction == "sum" ? d.sum() : d.mean()).item<float>();
    }

    private static Tensor Normalize(Tensor f) => f / (f.square().sum(1, keepdim: true).sqrt() + 1e-10);
}
