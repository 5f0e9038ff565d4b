using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Dalle2Sharp.Config;
using Dalle2Sharp.Tracking.HuggingFace;
using Dalle2Sharp.Tracking.Wandb;

namespace Dalle2Sharp.Tracking;

/// <summary>
/// The tracker section at run time, as upstream's Tracker: the data_path folder (created, or reused with
/// overwrite_data_path; never cleared), the console and metrics.jsonl, the configured logger (wandb,
/// tensorboard), the savers (local, wandb, huggingface) with upstream's path templates, and run.json,
/// which auto-resume reads. Remote services are checked here, before any work.
/// </summary>
public sealed class RunTracker : IDisposable
{
    public string DataPath { get; }
    public string MetricsPath => Path.Combine(DataPath, "metrics.jsonl");
    public string RunFilePath => Path.Combine(DataPath, "run.json");
    public IRunLogger? Logger { get; }
    private readonly StreamWriter _metrics;
    private readonly Action<string> _print;
    private readonly TrackerConfig _config;
    private readonly List<(TrackerSaveConfig Config, ICheckpointSaver Saver)> _savers;
    private bool _finished;
    /// <summary>A data-parallel rank other than 0: it writes, prints and sends nothing (rank 0 does).</summary>
    public bool IsFollower { get; }

    private RunTracker(string dataPath, Action<string> print, TrackerConfig config, IRunLogger? logger,
                       List<(TrackerSaveConfig, ICheckpointSaver)> savers, bool follower = false)
    {
        (DataPath, _print, _config, Logger, _savers, IsFollower) = (dataPath, print, config, logger, savers, follower);
        _metrics = follower ? StreamWriter.Null
            : new StreamWriter(new FileStream(MetricsPath, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    /// <summary>
    /// The tracker of a data-parallel rank other than 0: the same data_path, nothing created, logged or saved; only its
    /// warnings (bad samples of its own shards) reach stderr, marked with the rank.
    /// </summary>
    public static RunTracker Follower(TrackerConfig config, int rank) => new(Path.GetFullPath(config.DataPath),
        line => { if (line.StartsWith("warning", StringComparison.Ordinal)) Console.Error.WriteLine($"[rank {rank}] {line}"); },
        config, null, [], follower: true);

    /// <summary>What upstream adds to the logged config (train_decoder.py's extra_config) for one process.</summary>
    public static JsonObject ExtraConfig(int processes = 1, bool amp = false) => new()
    {
        ["Distributed"] = processes > 1, ["DistributedType"] = processes > 1 ? "MPI" : "NO", ["NumProcesses"] = processes,
        ["MixedPrecision"] = amp ? "bf16" : "no",
    };

    /// <summary>
    /// Creates or reuses data_path, then starts the logger and savers: a service that cannot be reached or
    /// refuses the credentials stops here (unless its offline mode is set). An existing data_path without
    /// overwrite_data_path is an error, as upstream.
    /// </summary>
    /// <param name="fullConfig">The resolved config, logged with the run (wandb config, tensorboard text).</param>
    public static RunTracker Start(TrackerConfig config, bool resuming, Action<string>? print = null, JsonObject? fullConfig = null,
                                   Runtime.IoTimeouts? timeouts = null, int processes = 1)
    {
        print ??= Console.WriteLine;
        string full = Path.GetFullPath(config.DataPath);
        if (Directory.Exists(full) && !config.OverwriteDataPath && !resuming && Directory.EnumerateFileSystemEntries(full).Any())
            throw new UserInputException($"tracker.data_path {full} already exists: " +
                                         "set overwrite_data_path to reuse it, resume, or choose another folder");
        Directory.CreateDirectory(full);
        fullConfig ??= [];
        var logged = fullConfig.DeepClone().AsObject();
        bool amp = fullConfig["train"]?["amp"]?.GetValue<bool>() == true;
        foreach (var (k, v) in ExtraConfig(processes, amp)) logged[k] = v?.DeepClone();

        IRunLogger? logger = null;
        var savers = new List<(TrackerSaveConfig, ICheckpointSaver)>();
        try
        {
            logger = StartLogger(config, full, logged, print, timeouts);
            for (int i = 0; i < config.Save.Count; i++)
                savers.Add((config.Save[i], StartSaver(config.Save[i], i, full, logger, logged, print, timeouts)));
        }
        catch
        {
            foreach (var (_, saver) in savers) saver.Dispose();
            logger?.Dispose();
            throw;
        }
        return new RunTracker(full, print, config, logger, savers);
    }

    private static IRunLogger? StartLogger(TrackerConfig config, string dataPath, JsonObject logged, Action<string> print,
                                           Runtime.IoTimeouts? timeouts)
    {
        var log = config.Log;
        switch (log.LogType)
        {
            case "wandb":
            {
                var settings = WandbSettings.FromEnvironment();
                if (settings.Disabled)
                {
                    print("wandb: disabled (WANDB_MODE=disabled); metrics go to the console and metrics.jsonl only");
                    return null;
                }
                // auto_resume continues the run recorded in run.json; resume continues wandb_run_id; otherwise a new run.
                var recorded = log.AutoResume ? RecordedLogger(dataPath) : null;
                string? entity = log.WandbEntity, runId = log.WandbRunId, resume = log.Resume ? "must" : null;
                if (recorded is not null && recorded["logger_type"]?.GetValue<string>() == "WandbLogger")
                {
                    entity = recorded["entity"]?.GetValue<string>() ?? entity;
                    runId = recorded["run_id"]?.GetValue<string>() ?? runId;
                    resume = "must";
                }
                else if (recorded?["logger_type"]?.GetValue<string>() is { } other && other != "ConsoleLogger" && other != "WandbLogger")
                    throw new UserInputException($"auto_resume: run.json was written by {other}, the config logs to wandb");
                var run = WandbRun.Start(settings, dataPath, entity, log.WandbProject!, runId, log.WandbRunName, logged, resume, print, timeouts);
                return new WandbLogger(run);
            }
            case "tensorboard":
                return new TensorBoardLogger(dataPath, logged.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            case "console":
                return null;
            default:
                throw new UserInputException($"tracker.log.log_type \"{log.LogType}\" is not known");
        }
    }

    private static ICheckpointSaver StartSaver(TrackerSaveConfig saver, int index, string dataPath, IRunLogger? logger, JsonObject logged,
                                               Action<string> print, Runtime.IoTimeouts? timeouts)
    {
        switch (saver.SaveTo)
        {
            case "local":
                return new LocalSaver();
            case "wandb":
                if (saver.WandbRunPath is { } runPath)
                {
                    var parts = runPath.Split('/');
                    if (parts.Length != 3 || parts.Any(p => p.Length == 0))
                        throw new UserInputException($"tracker.save[{index}].wandb_run_path \"{runPath}\" is not entity/project/run_id");
                    var run = WandbRun.Start(WandbSettings.FromEnvironment(), dataPath, parts[0], parts[1], parts[2], null, logged, "allow", print,
                        timeouts);
                    return new WandbSaver(run, dataPath, ownsRun: true);
                }
                if (logger is WandbLogger wandb) return new WandbSaver(wandb.Run, dataPath, ownsRun: false);
                throw new UserInputException($"tracker.save[{index}]: save_to wandb needs tracker.log.log_type wandb (with WANDB_MODE " +
                                             "not disabled) or a wandb_run_path");
            case "huggingface":
                return HuggingFaceSaver.Start(saver.HuggingfaceRepo!, saver.TokenPath, dataPath, print, timeouts);
            default:
                throw new UserInputException($"tracker.save[{index}].save_to \"{saver.SaveTo}\" is not known");
        }
    }

    /// <summary>The logger recorded in run.json by an earlier run (for auto-resume), or null.</summary>
    private static JsonObject? RecordedLogger(string dataPath)
    {
        var file = Path.Combine(dataPath, "run.json");
        if (!File.Exists(file)) return null;
        try { return JsonNode.Parse(File.ReadAllText(file)) as JsonObject; }
        catch (JsonException e) { throw new UserInputException($"{file} is not valid JSON ({e.Message}): fix or remove it to start over", e); }
    }

    /// <summary>Prints a line and sends it to the logger as console output.</summary>
    public void Print(string line)
    {
        _print(line);
        Logger?.LogConsole(line);
    }

    /// <summary>A diverged loss or a degenerate metric is recorded as "NaN" / "Infinity", not a crash.</summary>
    private static readonly JsonSerializerOptions JsonLines = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
    };

    /// <summary>One metrics record at the trainer's <paramref name="step"/>: printed, appended to metrics.jsonl and sent to the logger.</summary>
    public void Log(IReadOnlyDictionary<string, object?> values, long step = 0)
    {
        var json = new JsonObject();
        foreach (var (k, v) in values) json[k] = JsonValue.Create(v);
        json["step"] = step;
        json["time"] = DateTimeOffset.UtcNow.ToString("O");
        _metrics.WriteLine(json.ToJsonString(JsonLines));
        Print(string.Join("  ", values.Select(kv => $"{kv.Key}: {Format(kv.Value)}")));
        Logger?.Log(values, step);
    }

    public void LogImages(string section, IReadOnlyList<LoggedImage> images, long step) => Logger?.LogImages(section, images, step);

    /// <summary>
    /// Hands the saved files to every saver, as upstream's Tracker.save: each saver's file is the checkpoint
    /// or the model file (save_type), sent to save_latest_to and, when best, save_best_to, both formatted
    /// with <paramref name="fields"/>. A saver that fails is reported; the local checkpoint stays.
    /// </summary>
    public void Save(string checkpoint, Func<string> modelFile, IReadOnlyDictionary<string, object> fields, bool isBest, string message)
    {
        if (IsFollower) return;
        foreach (var (config, saver) in _savers)
        {
            try
            {
                string source = config.SaveType == "model" ? modelFile() : checkpoint;
                if (config.SaveLatestTo is { } latest) saver.SaveFile(source, Template(latest, fields), message);
                if (isBest && config.SaveBestTo is { } best) saver.SaveFile(source, Template(best, fields), message + " (best)");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Print($"warning: saving to {saver.Destination} failed: {e.Message}; the local checkpoint {checkpoint} is kept");
            }
        }
    }

    /// <summary>Upstream's save_config: the config file to data_path and to every saver's save_meta_to folder.</summary>
    public void SaveConfig(string configFile, string name = "decoder_config.json")
    {
        if (IsFollower) return;
        Runtime.AtomicFile.Copy(configFile, Path.Combine(DataPath, name));
        foreach (var (config, saver) in _savers)
            if (config.SaveMetaTo is { } meta)
                saver.SaveFile(configFile, saver is LocalSaver ? Path.Combine(meta, name) : $"{meta.TrimEnd('/')}/{name}", $"Config {name}");
    }

    private static string Template(string template, IReadOnlyDictionary<string, object> fields)
    {
        try { return Runtime.PythonFormat.Format(template, fields); }
        catch (FormatException e) { throw new UserInputException($"tracker.save path template: {e.Message}", e); }
    }

    /// <summary>
    /// Records the last good checkpoint for auto-resume (written atomically): its path relative to
    /// data_path, so a moved or copied project still finds it, the absolute path as a fallback, and the
    /// logger's resume data (upstream's auto_resume.json: the wandb run to continue).
    /// </summary>
    public void RecordCheckpoint(string checkpointPath)
    {
        if (IsFollower) return;
        string absolute = Path.GetFullPath(checkpointPath);
        var json = new JsonObject
        {
            ["checkpoint"] = Path.GetRelativePath(DataPath, absolute), ["checkpoint_absolute"] = absolute,
            ["logger_type"] = Logger?.LoggerType ?? "ConsoleLogger",
        };
        if (Logger is not null) foreach (var (k, v) in Logger.ResumeData) json[k] = v;
        Runtime.AtomicFile.Write(RunFilePath, s => JsonSerializer.Serialize(s, json));
    }

    /// <summary>
    /// The checkpoint auto-resume loads: none without run.json; the one it names, relative to data_path
    /// first, then as an absolute path. A run.json whose checkpoint exists in neither place is an error:
    /// starting over would silently throw the run away.
    /// </summary>
    public static string? LastCheckpoint(string dataPath)
    {
        var run = RecordedLogger(dataPath);
        var file = Path.Combine(dataPath, "run.json");
        string? named = run?["checkpoint"]?.GetValue<string>();
        string? absolute = run?["checkpoint_absolute"]?.GetValue<string>();
        if (named is null) return null;
        var candidates = new[] { Path.GetFullPath(named, dataPath), absolute }.OfType<string>().Distinct().ToArray();
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new UserInputException($"auto_resume: {file} names the checkpoint {string.Join(" or ", candidates)}, which does not exist; " +
                                            "stopping instead of starting over (restore the file, or remove run.json to start a new run)");
    }

    /// <summary>Ends the logger's run with <paramref name="exitCode"/> and delivers what savers and logger queued (bounded waits).</summary>
    public void Finish(int exitCode)
    {
        if (_finished) return;
        _finished = true;
        foreach (var (_, saver) in _savers) saver.Finish(_print);
        Logger?.Finish(exitCode, _print);
    }

    private static string Format(object? v) => v switch
    {
        double d => d.ToString(Math.Abs(d) < 1e-3 && d != 0 ? "0.###e0" : "0.#####"),
        float f => ((double)f).ToString("0.#####"),
        null => "-",
        _ => v.ToString() ?? "",
    };

    public void Dispose()
    {
        foreach (var (_, saver) in _savers) saver.Dispose();
        Logger?.Dispose();
        _metrics.Dispose();
    }
}
