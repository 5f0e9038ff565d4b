using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tracking;

/// <summary>
/// The tracker section at run time: the data_path folder (created, or reused with overwrite_data_path;
/// never cleared), the console log, a JSON-lines metrics file, and the run file that auto-resume reads.
/// </summary>
public sealed class RunTracker : IDisposable
{
    public string DataPath { get; }
    public string MetricsPath => Path.Combine(DataPath, "metrics.jsonl");
    public string RunFilePath => Path.Combine(DataPath, "run.json");
    private readonly StreamWriter _metrics;
    private readonly Action<string> _print;

    private RunTracker(string dataPath, Action<string> print)
    {
        DataPath = dataPath;
        _print = print;
        _metrics = new StreamWriter(new FileStream(MetricsPath, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    /// <summary>
    /// Refuses before any work: logger/loader/saver kinds not built yet, and an existing data_path
    /// without overwrite_data_path.
    /// </summary>
    public static RunTracker Start(TrackerConfig config, bool resuming, Action<string>? print = null)
    {
        if (config.Log.LogType != "console")
            throw new UserInputException($"tracker.log.log_type \"{config.Log.LogType}\" is not available yet (console is)");
        if (config.Load?.LoadFrom is "wandb")
            throw new UserInputException("tracker.load.load_from \"wandb\" is not available yet (local and url are)");
        foreach (var (saver, i) in config.Save.Select((s, i) => (s, i)))
            if (saver.SaveTo != "local")
                throw new UserInputException($"tracker.save[{i}].save_to \"{saver.SaveTo}\" is not available yet (local is)");

        // As upstream's Tracker: without overwrite_data_path an existing folder is an error; with it the
        // folder is reused as it is. Nothing is ever deleted: files of ours are replaced as they are written.
        string full = Path.GetFullPath(config.DataPath);
        if (Directory.Exists(full) && !config.OverwriteDataPath && !resuming && Directory.EnumerateFileSystemEntries(full).Any())
            throw new UserInputException($"tracker.data_path {full} already exists: " +
                                         "set overwrite_data_path to reuse it, resume, or choose another folder");
        Directory.CreateDirectory(full);
        return new RunTracker(full, print ?? Console.WriteLine);
    }

    public void Print(string line) => _print(line);

    /// <summary>A diverged loss or a degenerate metric is recorded as "NaN" / "Infinity", not a crash.</summary>
    private static readonly JsonSerializerOptions JsonLines = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
    };

    /// <summary>One metrics record: printed as a line and appended to metrics.jsonl.</summary>
    public void Log(IReadOnlyDictionary<string, object?> values)
    {
        var json = new JsonObject();
        foreach (var (k, v) in values) json[k] = JsonValue.Create(v);
        json["time"] = DateTimeOffset.UtcNow.ToString("O");
        _metrics.WriteLine(json.ToJsonString(JsonLines));
        _print(string.Join("  ", values.Select(kv => $"{kv.Key}: {Format(kv.Value)}")));
    }

    /// <summary>
    /// Records the last good checkpoint for auto-resume (written atomically): its path relative to
    /// data_path, so a moved or copied project still finds it, and the absolute path as a fallback.
    /// </summary>
    public void RecordCheckpoint(string checkpointPath)
    {
        string absolute = Path.GetFullPath(checkpointPath);
        var json = new JsonObject
        {
            ["checkpoint"] = Path.GetRelativePath(DataPath, absolute), ["checkpoint_absolute"] = absolute, ["logger_type"] = "ConsoleLogger",
        };
        Runtime.AtomicFile.Write(RunFilePath, s => JsonSerializer.Serialize(s, json));
    }

    /// <summary>
    /// The checkpoint auto-resume loads: none without run.json; the one it names, relative to data_path
    /// first, then as an absolute path. A run.json whose checkpoint exists in neither place is an error:
    /// starting over would silently throw the run away.
    /// </summary>
    public static string? LastCheckpoint(string dataPath)
    {
        var file = Path.Combine(dataPath, "run.json");
        if (!File.Exists(file)) return null;
        JsonNode? run;
        try { run = JsonNode.Parse(File.ReadAllText(file)); }
        catch (JsonException e) { throw new UserInputException($"{file} is not valid JSON ({e.Message}): fix or remove it to start over", e); }
        string? named = run?["checkpoint"]?.GetValue<string>();
        string? absolute = run?["checkpoint_absolute"]?.GetValue<string>();
        if (named is null) return null;
        var candidates = new[] { Path.GetFullPath(named, dataPath), absolute }.OfType<string>().Distinct().ToArray();
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new UserInputException($"auto_resume: {file} names the checkpoint {string.Join(" or ", candidates)}, which does not exist; " +
                                            "stopping instead of starting over (restore the file, or remove run.json to start a new run)");
    }

    private static string Format(object? v) => v switch
    {
        double d => d.ToString(Math.Abs(d) < 1e-3 && d != 0 ? "0.###e0" : "0.#####"),
        float f => ((double)f).ToString("0.#####"),
        null => "-",
        _ => v.ToString() ?? "",
    };

    public void Dispose() => _metrics.Dispose();
}
