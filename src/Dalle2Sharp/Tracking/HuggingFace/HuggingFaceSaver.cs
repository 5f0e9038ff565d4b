using System.Text.Json.Nodes;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tracking.HuggingFace;

/// <summary>
/// Upstream's HuggingfaceSaver: each saved file becomes one commit to the model repo (created if
/// missing) at the formatted path, large files through Git LFS. Saves are journaled with a snapshot
/// of the file and delivered in the background; an outage delays them, a later save of the same path
/// supersedes a queued one, and the local checkpoint is never touched.
/// </summary>
public sealed class HuggingFaceSaver : ICheckpointSaver
{
    public static readonly TimeSpan FinishWait = TimeSpan.FromSeconds(300);
    private readonly Outbox _outbox;

    private HuggingFaceSaver(Outbox outbox, string repo) => (_outbox, Destination) = (outbox, $"huggingface repo {repo}");

    public string Destination { get; }

    /// <summary>Checks the token (whoami) and creates the repo before any work: a wrong token is a start-up error.</summary>
    public static HuggingFaceSaver Start(string repo, string? tokenPath, string dataPath, Action<string> print, IoTimeouts? timeouts = null)
    {
        string token = HubClient.FindToken(tokenPath) ?? throw new UserInputException(
            "huggingface: no token: set tracker.save.token_path, HF_TOKEN, or log in with `huggingface-cli login` (~/.cache/huggingface/token)");
        var client = new HubClient(repo, token, timeouts);
        try
        {
            string user = client.WhoAmI();
            client.CreateRepo();
            print($"huggingface: saving to {client.Endpoint}/{repo} as {user}");
        }
        catch (DeliveryException e) when (e.Retryable)
        {
            throw new NetworkException($"huggingface at {client.Endpoint} cannot be reached ({e.Message})");
        }
        catch (DeliveryException e) { throw new UserInputException($"huggingface: {e.Message}"); }
        var outbox = new Outbox(Path.Combine(dataPath, "huggingface", repo.Replace('/', '-')), print);
        outbox.Header = new JsonObject { ["service"] = "huggingface", ["endpoint"] = client.Endpoint, ["repo"] = repo, ["token_path"] = tokenPath };
        outbox.Start(new HubSender(client, outbox));
        return new HuggingFaceSaver(outbox, repo);
    }

    public void SaveFile(string localFile, string path, string message) =>
        _outbox.Append(new JsonObject
        {
            ["kind"] = "upload", ["path"] = path.TrimStart('/').Replace('\\', '/'), ["message"] = message, ["snapshot"] = _outbox.Snapshot(localFile),
        });

    public void Finish(Action<string> print)
    {
        long left = _outbox.Drain(FinishWait);
        if (left > 0)
            print($"warning: {Destination}: {left} save(s) not delivered ({_outbox.LastFailure ?? "still sending"}); kept in {_outbox.Folder}: " +
                  $"`dalle2 tracker sync {_outbox.Folder}` sends them");
    }

    public void Dispose() => _outbox.Dispose();
}

/// <summary>Delivers queued saves as commits; a save superseded by a later one of the same path is skipped.</summary>
public sealed class HubSender(HubClient client, Outbox outbox) : IOutboxSender
{
    private bool _repoReady;

    public string Service => $"huggingface repo {client.RepoId}";

    public void Heartbeat() { }

    public int Deliver(IReadOnlyList<JsonObject> pending)
    {
        var entry = pending[0];
        string path = entry["path"]!.GetValue<string>();
        if (pending.Skip(1).Any(e => e["path"]?.GetValue<string>() == path)) return 1;
        string local = Path.Combine(outbox.Folder, entry["snapshot"]!.GetValue<string>());
        if (!File.Exists(local)) return 1;
        if (!_repoReady) { client.CreateRepo(); _repoReady = true; }
        client.UploadFile(local, path, entry["message"]?.GetValue<string>() ?? $"Upload {path} with dalle2sharp");
        return 1;
    }
}
