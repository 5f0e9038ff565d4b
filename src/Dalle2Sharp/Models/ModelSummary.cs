using System.Text.Json;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Models;

/// <summary>What a user checks before loading someone's checkpoint: parameter counts and every state_dict key with its shape.</summary>
public sealed record ModelSummary(IReadOnlyList<ModelSummary.UnetInfo> Unets, long Parameters, IReadOnlyList<(string Key, long[] Shape)> StateDict)
{
    public sealed record UnetInfo(int Number, int ImageSize, long Parameters, bool LearnedVariance, string Sampler);

    public static ModelSummary Of(DecoderConfig config)
    {
        using var decoder = new Decoder(config);
        var unets = Enumerable.Range(1, decoder.NumUnets).Select(n => new UnetInfo(
            n, decoder.ImageSizes[n - 1], decoder.Unet(n).parameters().Sum(p => p.numel()), decoder.LearnedVariance[n - 1],
            decoder.DefaultSampler(n) is var s && s.Steps is { } steps && s.Kind != "ddpm" ? $"{s.Kind} ({steps} steps)" : s.Kind)).ToArray();
        var stateDict = decoder.state_dict().Select(kv => (kv.Key, kv.Value.shape)).ToArray();
        return new ModelSummary(unets, unets.Sum(u => u.Parameters), stateDict);
    }

    public string ToText()
    {
        var lines = new List<string>();
        foreach (var u in Unets)
            lines.Add($"unet {u.Number}: {u.Parameters:N0} parameters, {u.ImageSize} px, " +
                      $"learned variance {(u.LearnedVariance ? "yes" : "no")}, sampler {u.Sampler}");
        lines.Add($"decoder: {Parameters:N0} parameters, {StateDict.Count} state_dict entries");
        lines.Add("");
        int width = StateDict.Max(e => e.Key.Length) + 2;
        lines.AddRange(StateDict.Select(e => $"{e.Key.PadRight(width)}[{string.Join(", ", e.Shape)}]"));
        return string.Join(Environment.NewLine, lines);
    }

    public string ToJson()
    {
        var json = new JsonObject
        {
            ["unets"] = new JsonArray(Unets.Select(u => (JsonNode)new JsonObject
            {
                ["number"] = u.Number, ["image_size"] = u.ImageSize, ["parameters"] = u.Parameters,
                ["learned_variance"] = u.LearnedVariance, ["sampler"] = u.Sampler,
            }).ToArray()),
            ["parameters"] = Parameters,
            ["state_dict"] = new JsonArray(StateDict.Select(e => (JsonNode)new JsonObject
            {
                ["key"] = e.Key, ["shape"] = new JsonArray(e.Shape.Select(d => (JsonNode)d).ToArray()),
            }).ToArray()),
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
