using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tracking.Wandb;

/// <summary>
/// One wandb run: created or resumed at start (online: before any work, so a wrong key or an
/// unreachable server stops the command; offline: only recorded), then fed through an
/// <see cref="Outbox"/> under data_path/wandb/run-ID whose journal the <see cref="WandbSender"/> turns into
/// file_stream posts and file uploads, in order, in the background.
/// </summary>
public sealed class WandbRun : IDisposable
{
    /// <summary>Least time between file_stream posts, so that lines arriving meanwhile share one (wandb's core: 15 s).</summary>
    public static readonly TimeSpan TransmitInterval = TimeSpan.FromSeconds(5);

    /// <summary>How long the end of a run waits for queued entries to be delivered before leaving them for `tracker sync`.</summary>
    public static readonly TimeSpan FinishWait = TimeSpan.FromSeconds(120);

    public const string ClientVersion = "dalle2sharp-0.1";

    public WandbSettings Settings { get; }
    public string Entity { get; private set; }
    public string Project { get; }
    public string RunId { get; }
    public Outbox Outbox { get; }
    public string Service => $"wandb run {Entity}/{Project}/{RunId}";
    private readonly DateTime _started = DateTime.UtcNow;
    private readonly double _runtimeBase;
    private long _historyOffset, _outputOffset;
    private readonly object _lock = new();

    private WandbRun(WandbSettings settings, string entity, string project, string runId, Outbox outbox, double runtimeBase,
                     long historyOffset, long outputOffset)
    {
        (Settings, Entity, Project, RunId, Outbox) = (settings, entity, project, runId, outbox);
        (_runtimeBase, _historyOffset, _outputOffset) = (runtimeBase, historyOffset, outputOffset);
    }

    /// <summary>A new 8-character run id of [a-z0-9], as wandb's generate_id.</summary>
    public static string NewRunId()
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        return string.Concat(Enumerable.Range(0, 8).Select(_ => alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)]));
    }

    /// <param name="resume">"must" (auto-resume of a known run), "allow" (attach to a run that may exist) or null (new run).</param>
    public static WandbRun Start(WandbSettings settings, string dataPath, string? entity, string project, string? runId, string? displayName,
                                 JsonObject config, string? resume, Action<string> print, IoTimeouts? timeouts = null)
    {
        runId ??= NewRunId();
        var folder = Path.Combine(dataPath, "wandb", $"run-{runId}");
        var outbox = new Outbox(folder, print, TransmitInterval);
        var header = outbox.Header;
        if (settings.Offline)
        {
            // Nothing is sent: the journal keeps it all; `tracker sync` creates (or resumes) the run later.
            header ??= new JsonObject
            {
                ["service"] = "wandb", ["base_url"] = settings.BaseUrl, ["entity"] = entity, ["project"] = project, ["run_id"] = runId,
                ["display_name"] = displayName, ["config"] = WandbConfig(config), ["created"] = false, ["resume"] = resume,
                ["history_offset"] = 0, ["output_offset"] = 0,
            };
            outbox.Header = header;
            header = outbox.Header;
            var offline = new WandbRun(settings, entity ?? "", project, runId, outbox, 0, JournalCount(outbox, "history", header),
                JournalCount(outbox, "output", header));
            print($"wandb: offline (WANDB_MODE={settings.Mode}); the run is kept in {folder}; `dalle2 tracker sync {folder}` uploads it");
            return offline;
        }

        try
        {
            var api = new WandbApi(settings, timeouts);
            settings.RequireKey();
            JsonObject? viewer;
            try { viewer = api.GraphQL("Viewer", Queries.Viewer, new JsonObject())["viewer"] as JsonObject; }
            catch (DeliveryException e) { throw StartFailure(settings, e); }
            if (viewer is null) throw new UserInputException($"wandb at {settings.BaseUrl} did not accept the API key (no viewer)");

            // Entries left from an earlier process (an outage, a crash) are delivered first, in order.
            if (header is { } earlier && outbox.Pending > 0)
                print($"wandb: {outbox.Pending} entries from an earlier process are queued in {folder}; they are delivered first");
            Created created;
            try { created = Upsert(api, entity, project, runId, displayName, config, resume, header); }
            catch (DeliveryException e) { throw StartFailure(settings, e); }
            string resolvedEntity = created.Entity;
            long history = Math.Max(created.HistoryLines, JournalCount(outbox, "history", header));
            long output = Math.Max(created.OutputLines, JournalCount(outbox, "output", header));
            outbox.Header = new JsonObject
            {
                ["service"] = "wandb", ["base_url"] = settings.BaseUrl, ["entity"] = resolvedEntity, ["project"] = created.Project,
                    ["run_id"] = runId,
                ["display_name"] = created.DisplayName, ["storage_id"] = created.StorageId, ["config"] = WandbConfig(config), ["created"] = true,
                ["history_offset"] = header?["history_offset"]?.GetValue<long>() ?? created.HistoryLines,
                ["output_offset"] = header?["output_offset"]?.GetValue<long>() ?? created.OutputLines,
                ["summary"] = created.Summary?.DeepClone(),
            };
            var run = new WandbRun(settings, resolvedEntity, created.Project, runId, outbox, created.Runtime, history, output);
            outbox.Start(new WandbSender(api, outbox));
            print($"wandb: {(created.Resumed ? "resumed" : "created")} run {resolvedEntity}/{created.Project}/{runId} " +
                  $"({created.DisplayName}) at {settings.BaseUrl}");
            return run;
        }
        catch
        {
            outbox.Dispose();
            throw;
        }
    }

    private static Exception StartFailure(WandbSettings settings, DeliveryException e) => e.Retryable
        ? new NetworkException($"wandb at {settings.BaseUrl} cannot be reached ({e.Message}); " +
                               "set WANDB_MODE=offline to train now and `dalle2 tracker sync` later")
        : new UserInputException($"wandb at {settings.BaseUrl} refused the run: {e.Message}");

    internal sealed record Created(string StorageId, string Entity, string Project, string DisplayName, long HistoryLines, long OutputLines,
                                   double Runtime, JsonObject? Summary, bool Resumed);

    /// <summary>RunResumeStatus when resuming, then UpsertBucket: the run's storage id, names and the line counts to continue from.</summary>
    internal static Created Upsert(WandbApi api, string? entity, string project, string runId, string? displayName, JsonObject config,
                                   string? resume, JsonObject? header)
    {
        string? storageId = header?["storage_id"]?.GetValue<string>();
        long historyLines = 0, outputLines = 0;
        double runtime = 0;
        JsonObject? summary = null;
        bool resumed = false;
        try
        {
            if (resume is not null)
            {
                var status = api.GraphQL("RunResumeStatus", Queries.RunResumeStatus,
                    new JsonObject { ["project"] = project, ["entity"] = entity, ["name"] = runId });
                var bucket = status["model"]?["bucket"] as JsonObject;
                bool exists = bucket is not null && ParseObject(bucket["wandbConfig"])?.ContainsKey("t") == true;
                if (!exists && resume == "must")
                    throw new UserInputException($"wandb: run {entity}/{project}/{runId} to resume does not exist at {api.Settings.BaseUrl}");
                if (exists)
                {
                    resumed = true;
                    storageId = bucket!["id"]?.GetValue<string>();
                    historyLines = bucket["historyLineCount"]?.GetValue<long>() ?? 0;
                    outputLines = bucket["logLineCount"]?.GetValue<long>() ?? 0;
                    summary = ParseObject(bucket["summaryMetrics"]);
                    runtime = summary?["_runtime"]?.GetValue<double>() ?? 0;
                }
            }
            var variables = new JsonObject
            {
                ["id"] = storageId, ["name"] = runId, ["project"] = project, ["entity"] = entity, ["groupName"] = null, ["description"] = null,
                ["displayName"] = displayName, ["notes"] = null, ["commit"] = null, ["config"] = WandbConfig(config).ToJsonString(),
                ["host"] = Environment.MachineName, ["debug"] = null, ["program"] = "dalle2 train-decoder", ["repo"] = null, ["jobType"] = null,
                ["state"] = null, ["sweep"] = null, ["tags"] = null, ["summaryMetrics"] = null,
            };
            var upserted = api.GraphQL("UpsertBucket", Queries.UpsertBucket, variables)["upsertBucket"]?["bucket"]
                ?? throw new DeliveryException("wandb UpsertBucket: no bucket in the answer", retryable: false);
            return new Created(upserted["id"]!.GetValue<string>(), upserted["project"]?["entity"]?["name"]?.GetValue<string>() ?? entity ?? "",
                upserted["project"]?["name"]?.GetValue<string>() ?? project, upserted["displayName"]?.GetValue<string>() ?? runId,
                Math.Max(historyLines, upserted["historyLineCount"]?.GetValue<long>() ?? 0), outputLines, runtime, summary, resumed);
        }
        catch (DeliveryException e) when (header is null || e.Retryable is false) { throw StartFailure(api.Settings, e); }
    }

    private static JsonObject? ParseObject(JsonNode? node) => node?.GetValueKind() switch
    {
        System.Text.Json.JsonValueKind.String => JsonNode.Parse(node.GetValue<string>()) as JsonObject,
        System.Text.Json.JsonValueKind.Object => node.AsObject(),
        _ => null,
    };

    /// <summary>The config as wandb stores it: {"key": {"value": v}}, plus the client's _wandb entry (its "t" marks the run resumable).</summary>
    internal static JsonObject WandbConfig(JsonObject config)
    {
        var wrapped = new JsonObject();
        foreach (var (key, value) in config) wrapped[key] = new JsonObject { ["value"] = value?.DeepClone() };
        wrapped["_wandb"] = new JsonObject
        {
            ["value"] = new JsonObject { ["cli_version"] = ClientVersion, ["t"] = new JsonObject { ["5"] = ClientVersion, ["13"] = "linux" } },
        };
        return wrapped;
    }

    /// <summary>Lines of a kind already journaled (a resumed process continues their offsets).</summary>
    private static long JournalCount(Outbox outbox, string kind, JsonObject? header)
    {
        var journal = Path.Combine(outbox.Folder, Outbox.JournalName);
        if (!File.Exists(journal)) return 0;
        long last = -1;
        foreach (var line in File.ReadLines(journal))
            if (JsonNode.Parse(line) is JsonObject e && e["kind"]?.GetValue<string>() == kind) last = e["offset"]!.GetValue<long>();
        long start = header?[$"{kind}_offset"]?.GetValue<long>() ?? 0;
        return Math.Max(start, last + 1);
    }

    private double Runtime => _runtimeBase + (DateTime.UtcNow - _started).TotalSeconds;

    /// <summary>Queues a history row at <paramref name="step"/> with wandb's _step, _runtime and _timestamp.</summary>
    public void History(JsonObject row, long step)
    {
        row["_step"] = step;
        row["_runtime"] = Math.Round(Runtime, 6);
        row["_timestamp"] = Math.Round(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0, 6);
        lock (_lock) Outbox.Append(new JsonObject { ["kind"] = "history", ["offset"] = _historyOffset++, ["row"] = row });
    }

    /// <summary>A console line as the legacy output.log format: "yyyy-MM-ddTHH:mm:ss.ffffff text" (UTC, no Z).</summary>
    public void ConsoleLine(string line, bool error = false)
    {
        string ts = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.ffffff", CultureInfo.InvariantCulture);
        lock (_lock) Outbox.Append(new JsonObject { ["kind"] = "output", ["offset"] = _outputOffset++,
            ["line"] = $"{(error ? "ERROR " : "")}{ts} {line}" });
    }

    /// <summary>Queues a file for the run under <paramref name="name"/> (a run-relative path), snapshotted now.</summary>
    public void QueueFile(string localFile, string name) =>
        Outbox.Append(new JsonObject { ["kind"] = "file", ["name"] = name.Replace('\\', '/'), ["snapshot"] = Outbox.Snapshot(localFile) });

    public void Finish(int exitCode, Action<string> print)
    {
        Outbox.Append(new JsonObject { ["kind"] = "finish", ["exitcode"] = exitCode });
        if (Settings.Offline)
        {
            print($"wandb: offline run kept in {Outbox.Folder}; upload it with `dalle2 tracker sync {Outbox.Folder}`");
            return;
        }
        long left = Outbox.Drain(FinishWait);
        if (left == 0) print($"wandb: run {Entity}/{Project}/{RunId} finished (exit code {exitCode}); everything delivered");
        else
            print($"warning: wandb: {left} entries were not delivered ({Outbox.LastFailure ?? "still sending"}); they are kept in {Outbox.Folder}: " +
                  $"`dalle2 tracker sync {Outbox.Folder}` sends them");
    }

    public void Dispose() => Outbox.Dispose();
}
