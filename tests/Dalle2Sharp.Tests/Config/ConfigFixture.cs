using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Config;

/// <summary>A minimal valid config as JSON, and edits addressed by JSON path ("decoder.unets[0].dim").</summary>
public sealed class ConfigFixture
{
    public const string Minimal = """
    {
      "decoder": {
        "unets": [{ "dim": 16, "image_embed_dim": 32, "cond_dim": 16, "dim_mults": [1, 2] }],
        "image_sizes": [32],
        "timesteps": 10
      },
      "data": { "webdataset_base_url": "shards/{}.tar", "img_embeddings_url": "embeddings/" },
      "train": {},
      "evaluate": {},
      "tracker": { "log": { "log_type": "console" }, "save": { "save_to": "local", "save_latest_to": "latest.pth" } }
    }
    """;

    public JsonObject Json { get; } = JsonNode.Parse(Minimal)!.AsObject();

    public ConfigFixture Set(string path, JsonNode? value)
    {
        var (parent, last) = Navigate(path, create: true);
        if (last is int index)
        {
            var array = (JsonArray)parent;
            if (index == array.Count) array.Add(value);
            else array[index] = value;
        }
        else ((JsonObject)parent)[(string)last] = value;
        return this;
    }

    public ConfigFixture Remove(string path)
    {
        var (parent, last) = Navigate(path, create: false);
        ((JsonObject)parent).Remove((string)last);
        return this;
    }

    public TrainDecoderConfig Load() => ConfigLoader.Parse(Json.ToJsonString());

    public IReadOnlyList<ConfigError> Errors()
    {
        var e = Assert.Throws<ConfigException>(() => Load());
        return e.Errors;
    }

    /// <summary>Asserts that loading fails with an error at exactly this path whose message contains the text.</summary>
    public void AssertError(string path, string messageContains)
    {
        var errors = Errors();
        Assert.True(errors.Any(e => e.Path == path && e.Message.Contains(messageContains, StringComparison.Ordinal)),
            $"expected \"{path}: …{messageContains}…\", got:\n  " + string.Join("\n  ", errors));
    }

    private (JsonNode parent, object last) Navigate(string path, bool create)
    {
        var parts = Regex.Matches(path, @"[^.\[\]]+|\[\d+\]").Select(m => m.Value).ToArray();
        JsonNode node = Json;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            var p = parts[i];
            if (p.StartsWith('[')) node = node[int.Parse(p.Trim('[', ']'))]!;
            else
            {
                if (node[p] is null && create) node[p] = new JsonObject();
                node = node[p]!;
            }
        }
        var last = parts[^1];
        return last.StartsWith('[') ? (node, int.Parse(last.Trim('[', ']'))) : (node, last);
    }
}
