using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

/// <summary>
/// The reference vectors' deterministic "analytic" weights: for the k-th key of the sorted state
/// dict, element i is derived from r(i, 7919·k), a multiplicative hash mapped to [-1, 1).
/// </summary>
public static class AnalyticWeights
{
    public static double R(long i, long s) => 2.0 * (((ulong)(i + s) * 2654435761UL) % 4294967296UL) / 4294967296.0 - 1.0;

    public static void Apply(nn.Module module, string prefix = "")
    {
        var sd = module.state_dict();
        var keys = sd.Keys.Where(k => k.StartsWith(prefix)).OrderBy(k => k[prefix.Length..], StringComparer.Ordinal).ToList();
        using var _ = no_grad();
        for (int k = 0; k < keys.Count; k++)
        {
            string name = keys[k][prefix.Length..];
            var target = sd[keys[k]];
            long numel = target.numel();
            var values = new float[numel];
            long s = 7919L * k;
            for (long i = 0; i < numel; i++)
            {
                double r = R(i, s);
                double w = target.dim() >= 2 ? r / Math.Sqrt((double)numel / target.shape[0])
                    : name.EndsWith(".weight") || name.EndsWith(".g") || name == "g" ? 1 + 0.1 * r
                    : 0.02 * r;
                values[i] = (float)w;
            }
            target.copy_(tensor(values).reshape(target.shape));
        }
    }
}
