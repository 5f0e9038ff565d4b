using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Dalle2Sharp.Config;

/// <summary>
/// `--set PATH=VALUE` on the command line: changes a config file's value without editing it (a CPU run
/// of a GPU config, a smoke run of a large one). PATH is the JSON path as config errors name it
/// (train.device, decoder.unets[0].dim); VALUE is JSON (1e-4, true, null, [1, 2], "text") or else a
/// plain string. Applied to the JSON before validation, so every rule still holds.
/// </summary>
public static partial class ConfigOverrides
{
    public static string Apply(string json, IReadOnlyList<string> overrides)
    {
        if (overrides.Count == 0) return json;
        JsonNode root;
        try { root = JsonNode.Parse(json) ?? throw new JsonException("empty"); }
        catch (JsonException) { return json; }   // the loader reports the syntax error with its position
        var errors = new List<ConfigError>();
        foreach (var item in overrides)
        {
            int eq = item.IndexOf('=');
            if (eq <= 0) { errors.Add(new ConfigError("", $"--set {item}: expected PATH=VALUE")); continue; }
            string path = item[..eq].Trim(), text = item[(eq + 1)..];
            JsonNode? value;
            try { value = JsonNode.Parse(text); }
            catch (JsonException) { value = JsonValue.Create(text); }
            if (Set(root, path, value) is { } error) errors.Add(new ConfigError(path, $"--set: {error}"));
        }
        if (errors.Count > 0) throw new ConfigException(errors);
        return root.ToJsonString();
    }

    private static string? Set(JsonNode root, string path, JsonNode? value)
    {
        var steps = Step().Matches(path).Select(m => m.Groups["key"].Success ? (object)m.Groups["key"].Value
            : int.Parse(m.Groups["index"].Value)).ToList();
        if (steps.Count == 0 || string.Concat(Step().Matches(path).Select(m => m.Value)).TrimStart('.') != path)
            return "not a path like train.device or decoder.unets[0].dim";
        JsonNode node = root;
        for (int i = 0; i < steps.Count - 1; i++)
        {
            JsonNode? next = steps[i] switch
            {
                string key when node is JsonObject o => o[key] ??= steps[i + 1] is int ? new JsonArray() : new JsonObject(),
                int index when node is JsonArray a && index < a.Count => a[index],
                _ => null,
            };
            if (next is null) return $"{path} does not exist in the config";
            node = next;
        }
        switch (steps[^1])
        {
            case string key when node is JsonObject o: o[key] = value; return null;
            case int index when node is JsonArray a && index < a.Count: a[index] = value; return null;
            default: return $"{path} does not exist in the config";
        }
    }

    [GeneratedRegex(@"\.?(?<key>[A-Za-z_][A-Za-z0-9_]*)|\[(?<index>\d+)\]")]
    private static partial Regex Step();
}
