using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tracking;

/// <summary>
/// The tracker section at run time: the data_path folder (created; cleared only with
/// overwrite_data_path and only when it is a safe place to clear), the console log, a JSON-lines
/// metrics file, and the run file that auto-resume reads.
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
    /// Refuses before any work: logger/loader/saver kinds not built yet, and clearing a folder that is
    /// the current directory, one of its parents, or outside it.
    /// </summary>
    public static RunTracker Start(TrackerConfig config, bool resuming, Action<string>? print = null)
    {
        if (config.Log.LogType != "console") throw new UserInputException($"tracker.log.log_type \"{config.Log.LogType}\" is not available yet (console is)");
        if (config.Load?.LoadFrom is "wandb") throw new UserInputException("tracker.load.load_from \"wandb\" is not available yet (local and url are)");
        foreach (var (saver, i) in config.Save.Select((s, i) => (s, i)))
            if (saver.SaveTo != "local") throw new UserInputException($"tracker.save[{i}].save_to \"{saver.SaveTo}\" is not available yet (local is)");

        string full = Path.GetFullPath(config.DataPath);
        if (Directory.Exists(full) && config.OverwriteDataPath && !resuming)
        {
            string cwd = Path.GetFullPath(Environment.CurrentDirectory).TrimEnd('/') + "/";
            if (!full.StartsWith(cwd, StringComparison.Ordinal) || full.TrimEnd('/') + "/" == cwd)
                throw new UserInputException($"tracker.data_path {full} is not inside the current directory: refusing to clear it (overwrite_data_path)");
            Directory.Delete(full, recursive: true);
        }
        else if (Directory.Exists(full) && !config.OverwriteDataPath && !resuming && Directory.EnumerateFileSystemEntries(full).Any())
            throw new UserInputException($"tracker.data_path {full} already exists: set overwrite_data_path, resume, or choose another folder");
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

    /// <summary>Records the last good checkpoint for auto-resume (written atomically).</summary>
    public void RecordCheckpoint(string checkpointPath)
    {
        var json = new JsonObject { ["checkpoint"] = Path.GetFullPath(checkpointPath), ["logger_type"] = "ConsoleLogger" };
        Training.Checkpoint.WriteAtomically(RunFilePath, s => JsonSerializer.Serialize(s, json));
    }

    /// <summary>The checkpoint auto-resume would load, if any.</summary>
    public static string? LastCheckpoint(string dataPath)
    {
        var file = Path.Combine(dataPath, "run.json");
        if (!File.Exists(file)) return null;
        var path = JsonNode.Parse(File.ReadAllText(file))?["checkpoint"]?.GetValue<string>();
        return path is not null && File.Exists(path) ? path : null;
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
