using TorchSharp;

namespace Dalle2Sharp.Tracking;

/// <summary>
/// log_type "tensorboard" (ours; the default of diffusers' training scripts): event files under
/// data_path/tensorboard through TorchSharp's SummaryWriter — numeric metrics as scalars at the
/// trainer's step, sample images, text values and the run's config as text.
/// </summary>
public sealed class TensorBoardLogger : IRunLogger
{
    private readonly TorchSharp.Modules.SummaryWriter _writer;

    public TensorBoardLogger(string dataPath, string configJson)
    {
        LogDir = Path.Combine(dataPath, "tensorboard");
        Directory.CreateDirectory(LogDir);
        _writer = torch.utils.tensorboard.SummaryWriter(LogDir, createRunName: false);
        // Markdown code block: TensorBoard's text plugin renders the JSON as written.
        _writer.add_text("config", "```\n" + configJson + "\n```", 0);
    }

    public string LogDir { get; }

    public string LoggerType => "TensorBoardLogger";

    public IReadOnlyDictionary<string, string> ResumeData => new Dictionary<string, string>();

    /// <summary>SummaryWriter takes 32-bit steps; larger step counts are clamped (over two billion optimizer steps).</summary>
    private static int Step(long step) => (int)Math.Clamp(step, 0, int.MaxValue);

    public void Log(IReadOnlyDictionary<string, object?> values, long step)
    {
        foreach (var (key, value) in values)
        {
            switch (value)
            {
                case double or float or int or long:
                    _writer.add_scalar(key, Convert.ToSingle(value), Step(step));
                    break;
                case string text:
                    _writer.add_text(key, text, Step(step));
                    break;
            }
        }
    }

    public void LogImages(string section, IReadOnlyList<LoggedImage> images, long step)
    {
        for (int i = 0; i < images.Count; i++)
            _writer.add_img($"{section}/{i}", images[i].PngPath, Step(step));
    }

    public void LogConsole(string line) { }

    public void Finish(int exitCode, Action<string> print) => print($"tensorboard: event files in {LogDir} (tensorboard --logdir {LogDir})");

    public void Dispose() { }
}

/// <summary>Upstream's LocalSaver: copies the file to the destination path as given (relative to the working directory, as upstream).</summary>
public sealed class LocalSaver : ICheckpointSaver
{
    public string Destination => "local";

    public void SaveFile(string localFile, string path, string message) => Runtime.AtomicFile.Copy(localFile, path);

    public void Finish(Action<string> print) { }

    public void Dispose() { }
}
