using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tracking.Wandb;

/// <summary>
/// Upstream's WandbLogger: metrics as history rows at the trainer's step (values logged at one step
/// share a row, as wandb's client merges them), sample images as media files with the
/// "images/separated" history value the official client writes, console lines, and the run's end.
/// </summary>
public sealed class WandbLogger(WandbRun run) : IRunLogger
{
    private JsonObject? _row;
    private long _rowStep = -1;
    private readonly object _lock = new();

    public string LoggerType => "WandbLogger";

    public WandbRun Run { get; } = run;

    public IReadOnlyDictionary<string, string> ResumeData => new Dictionary<string, string>
    {
        ["entity"] = Run.Entity, ["project"] = Run.Project, ["run_id"] = Run.RunId,
    };

    public void Log(IReadOnlyDictionary<string, object?> values, long step)
    {
        lock (_lock)
        {
            var row = RowAt(step);
            foreach (var (key, value) in values) row[key] = JsonValue.Create(value);
        }
    }

    /// <summary>
    /// Each image becomes media/images/{section}_{step}_{sha256[:20]}.png and the row gets
    /// {"_type": "images/separated", width, height, format, count, filenames, captions}.
    /// </summary>
    public void LogImages(string section, IReadOnlyList<LoggedImage> images, long step)
    {
        if (images.Count == 0) return;
        var names = new JsonArray();
        foreach (var image in images)
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(image.PngPath)))[..20];
            string name = $"media/images/{section.TrimStart('/')}_{step}_{hash}.png";
            Run.QueueFile(image.PngPath, name);
            names.Add(name);
        }
        var value = new JsonObject
        {
            ["_type"] = "images/separated", ["width"] = images[0].Width, ["height"] = images[0].Height, ["format"] = "png",
            ["count"] = images.Count, ["filenames"] = names,
        };
        if (images[0].Caption is not null) value["captions"] = new JsonArray(images.Select(i => (JsonNode?)i.Caption).ToArray());
        lock (_lock) RowAt(step)[section] = value;
    }

    /// <summary>The open row for <paramref name="step"/>: a later step sends the open one; an earlier step joins it (wandb would drop it).</summary>
    private JsonObject RowAt(long step)
    {
        if (_row is not null && step > _rowStep) Flush();
        if (_row is null) { _row = []; _rowStep = step; }
        return _row;
    }

    private void Flush()
    {
        var row = _row;
        _row = null;
        if (row is { Count: > 0 }) Run.History(row, _rowStep);
    }

    public void LogConsole(string line) => Run.ConsoleLine(line);

    public void Finish(int exitCode, Action<string> print)
    {
        lock (_lock) Flush();
        Run.Finish(exitCode, print);
    }

    public void Dispose()
    {
        lock (_lock) Flush();
        Run.Dispose();
    }
}

/// <summary>
/// Upstream's WandbSaver: the file is copied to data_path/PATH and saved to the run under PATH
/// (wandb.save with base_path = data_path, policy "now"): the logging run, or the run wandb_run_path names.
/// </summary>
public sealed class WandbSaver(WandbRun run, string dataPath, bool ownsRun) : ICheckpointSaver
{
    public string Destination => $"wandb run {run.Entity}/{run.Project}/{run.RunId}";

    public void SaveFile(string localFile, string path, string message)
    {
        string copy = Path.GetFullPath(Path.Combine(dataPath, path));
        if (!copy.StartsWith(Path.GetFullPath(dataPath) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new UserInputException($"tracker.save: wandb path {path} leaves data_path");
        if (!string.Equals(Path.GetFullPath(localFile), copy, StringComparison.Ordinal)) Runtime.AtomicFile.Copy(localFile, copy);
        run.QueueFile(copy, Path.GetRelativePath(dataPath, copy).Replace('\\', '/'));
    }

    public void Finish(Action<string> print)
    {
        if (ownsRun) run.Finish(0, print);
    }

    public void Dispose()
    {
        if (ownsRun) run.Dispose();
    }
}
