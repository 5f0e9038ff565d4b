using System.Text.Json;

namespace Dalle2Sharp.Config;

/// <summary>Reads, binds and validates a decoder training config, reporting every problem at once.</summary>
public static class ConfigLoader
{
    /// <param name="overrides">`--set PATH=VALUE` items applied to the file's JSON before validation (ConfigOverrides).</param>
    public static TrainDecoderConfig LoadFile(string path, IReadOnlyList<string>? overrides = null)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException([new ConfigError("", $"cannot read {path}: {e.Message}")]);
        }
        return Parse(ConfigOverrides.Apply(text, overrides ?? []), path);
    }

    /// <summary>Parses JSON text; <paramref name="source"/> names the file in JSON syntax errors.</summary>
    public static TrainDecoderConfig Parse(string json, string source = "config")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            long line = (e.LineNumber ?? 0) + 1, column = (e.BytePositionInLine ?? 0) + 1;
            string reason = e.Message.Split(". ")[0].Split(" LineNumber:")[0].TrimEnd('.', ' ');
            throw new ConfigException([new ConfigError("", $"{source}:{line}:{column}: invalid JSON: {reason}")]);
        }
        using (doc)
        {
            var binder = new ConfigBinder();
            var config = binder.BindRoot<TrainDecoderConfig>(doc.RootElement);
            // Cross-option rules run even after binding errors so that everything is reported at once;
            // a rule about a value that failed to bind (and so still holds its default) would only
            // repeat that failure, so it is left out.
            var errors = binder.Errors.ToList();
            foreach (var e in ConfigValidator.Validate(config))
                if (!binder.Errors.Any(b => Related(b.Path, e.Path))) errors.Add(e);
            if (errors.Count > 0) throw new ConfigException(errors);
            return config;
        }
    }

    private static bool Related(string a, string b) =>
        a == b || a.StartsWith(b + ".") || a.StartsWith(b + "[") || b.StartsWith(a + ".") || b.StartsWith(a + "[");
}
