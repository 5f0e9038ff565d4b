using System.Collections.Specialized;
using Dalle2Sharp.Evaluation;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Evaluation;

/// <summary>Randomly initialised metric networks written in the published files' layouts (the real weights are not available offline).</summary>
public static class MetricWeightFiles
{
    public static void WriteRandom(string folder, string lpipsNet = "alex")
    {
        Directory.CreateDirectory(Path.Combine(folder, "lpips", "v0.1"));
        using (var inception = new FidInceptionV3())
        {
            var sd = new OrderedDictionary();
            foreach (var (k, v) in inception.state_dict())
                if (!k.EndsWith("num_batches_tracked")) sd[k] = v;    // as in pt_inception-2015-12-05
            PyTorchPickler.PickleStateDict(Path.Combine(folder, MetricWeights.InceptionFile), sd);
        }
        using var lpips = new Lpips(lpipsNet);
        var backbone = new OrderedDictionary();
        var heads = new OrderedDictionary();
        foreach (var (key, value) in lpips.state_dict())
        {
            if (key.StartsWith("net.")) backbone[key[4..]] = value;
            else heads["lin" + key["lins.".Length..]] = value;
        }
        var weights = new MetricWeights(new Dalle2Sharp.Config.EvaluateConfig { WeightsDir = folder });
        PyTorchPickler.PickleStateDict(weights.LpipsBackbone(lpipsNet), backbone);
        PyTorchPickler.PickleStateDict(weights.LpipsHeads(lpipsNet), heads);
    }
}
