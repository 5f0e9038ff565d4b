namespace Dalle2Sharp.Tracking;

/// <summary>One image for a logger: a PNG file and its caption.</summary>
public sealed record LoggedImage(string PngPath, string? Caption, int Width, int Height);

/// <summary>
/// Where a run's metrics, images and console go besides the console and metrics.jsonl (upstream's
/// loggers: wandb; ours: tensorboard). Calls come from the training thread and must not block on the
/// network: remote loggers queue what they are given and deliver it in the background.
/// </summary>
public interface IRunLogger : IDisposable
{
    /// <summary>The class name upstream records in auto_resume.json ("WandbLogger", …).</summary>
    string LoggerType { get; }

    void Log(IReadOnlyDictionary<string, object?> values, long step);

    void LogImages(string section, IReadOnlyList<LoggedImage> images, long step);

    /// <summary>A printed line (the run's console output).</summary>
    void LogConsole(string line);

    /// <summary>What auto-resume needs to continue the same remote run (written to run.json; no secrets).</summary>
    IReadOnlyDictionary<string, string> ResumeData { get; }

    /// <summary>Marks the run finished with its exit code and delivers what is queued (bounded wait); says what is left and how to send it.</summary>
    void Finish(int exitCode, Action<string> print);
}

/// <summary>A destination for checkpoint and model files (upstream's savers: local, wandb, huggingface).</summary>
public interface ICheckpointSaver : IDisposable
{
    /// <summary>Where files go, for messages ("local", "wandb run e/p/r", "huggingface repo o/n").</summary>
    string Destination { get; }

    /// <summary>
    /// Sends <paramref name="localFile"/> to <paramref name="path"/> (the formatted save_*_to value). Remote
    /// savers snapshot the file and deliver it in the background; the local checkpoint is never touched.
    /// </summary>
    void SaveFile(string localFile, string path, string message);

    /// <summary>Delivers what is queued (bounded wait); says what is left and how to send it.</summary>
    void Finish(Action<string> print);
}
