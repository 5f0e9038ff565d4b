using Dalle2Sharp.Config;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Tracking.HuggingFace;
using Dalle2Sharp.Tracking.Wandb;

namespace Dalle2Sharp.Tracking;

/// <summary>
/// Upstream's loaders: which checkpoint a run starts from — the one run.json records (auto_resume), or
/// tracker.load: a local file, a URL (http(s), s3, a Hub resolve URL with the Hugging Face token) or a
/// wandb run file (wandb.restore), downloaded into data_path atomically with progress.
/// </summary>
public static class CheckpointLoader
{
    public static string? Resolve(TrackerConfig t, Action<string> print, IoTimeouts? timeouts = null)
    {
        string dataPath = Path.GetFullPath(t.DataPath);
        string? auto = t.Log.AutoResume ? RunTracker.LastCheckpoint(dataPath) : null;
        if (auto is not null) return auto;
        if (t.Load is not { } load || load.LoadFrom is null || load.OnlyAutoResume) return null;
        switch (load.LoadFrom)
        {
            case "local":
                if (!File.Exists(load.FilePath)) throw new UserInputException($"tracker.load.file_path {load.FilePath} does not exist");
                return load.FilePath;
            case "url":
            {
                var target = Path.Combine(dataPath, "loaded_checkpoint.pth");
                Directory.CreateDirectory(dataPath);
                string url = load.Url!;
                print($"downloading {SafeUrl.Redact(url)} …");
                // The Hub's token goes to the Hub only (HF_ENDPOINT, or huggingface.co).
                var headers = url.StartsWith(HubClient.ResolveEndpoint() + "/", StringComparison.Ordinal) && HubClient.FindToken(null) is { } token
                    ? new Dictionary<string, string> { ["Authorization"] = $"Bearer {token}" } : null;
                try { Storage.Download(url, target, print, timeouts, headers: headers); }
                catch (IOException e) when (e is not NetworkException) { throw new UserInputException($"tracker.load.url: {e.Message}", e); }
                return target;
            }
            case "wandb":
            {
                string runPath = load.WandbRunPath ?? (t.Log is { LogType: "wandb", WandbRunId: { } id } log
                    ? $"{log.WandbEntity}/{log.WandbProject}/{id}"
                    : throw new UserInputException("tracker.load.wandb_run_path is required (entity/project/run_id) unless " +
                                                   "tracker.log names the wandb run (wandb_run_id)"));
                var parts = runPath.Split('/');
                if (parts.Length != 3 || parts.Any(p => p.Length == 0))
                    throw new UserInputException($"tracker.load.wandb_run_path \"{runPath}\" is not entity/project/run_id");
                var settings = WandbSettings.FromEnvironment();
                if (settings.Offline || settings.Disabled)
                    throw new UserInputException($"tracker.load.load_from wandb needs wandb online (WANDB_MODE is {settings.Mode})");
                string name = load.WandbFilePath!;
                var target = Path.GetFullPath(Path.Combine(dataPath, name));
                if (!target.StartsWith(dataPath + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    throw new UserInputException($"tracker.load.wandb_file_path {name} leaves data_path");
                print($"downloading {name} from wandb run {runPath} …");
                try { new WandbApi(settings, timeouts).DownloadRunFile(parts[0], parts[1], parts[2], name, target, print); }
                catch (DeliveryException e) when (e.Retryable) { throw new NetworkException($"wandb at {settings.BaseUrl}: {e.Message}"); }
                catch (DeliveryException e) { throw new UserInputException($"tracker.load (wandb): {e.Message}", e); }
                return target;
            }
            default:
                throw new UserInputException($"tracker.load.load_from \"{load.LoadFrom}\" is not known");
        }
    }
}
