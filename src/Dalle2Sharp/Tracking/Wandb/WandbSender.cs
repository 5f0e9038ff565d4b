using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tracking.Wandb;

/// <summary>
/// Turns a wandb run's journal into what wandb's core sends: consecutive history and console lines as
/// one file_stream post (offsets as journaled, the whole summary at offset 0), each file as
/// createRunFiles + PUT followed by its name in file_stream's "uploaded", and the end as
/// complete + exitcode. A run recorded offline is created (UpsertBucket) before its first entry.
/// </summary>
public sealed class WandbSender : IOutboxSender
{
    private readonly WandbApi _api;
    private readonly Outbox _outbox;
    private readonly JsonObject _summary;

    public WandbSender(WandbApi api, Outbox outbox)
    {
        (_api, _outbox) = (api, outbox);
        var header = outbox.Header ?? throw new InvalidDataException($"{outbox.Folder}: no {Outbox.HeaderName}");
        _header = header;
        // The summary holds the latest value of every key: rebuilt from the journal, so a later process continues it.
        _summary = header["summary"]?.DeepClone() as JsonObject ?? [];
        var journal = Path.Combine(outbox.Folder, Outbox.JournalName);
        if (File.Exists(journal))
            foreach (var line in File.ReadLines(journal))
                if (JsonNode.Parse(line) is JsonObject { } e && e["kind"]?.GetValue<string>() == "history")
                    Merge(e["row"]!.AsObject());
    }

    private JsonObject _header;
    private JsonObject Header => _header;
    public string Service => $"wandb run {Header["entity"]}/{Header["project"]}/{Header["run_id"]}";

    private void Merge(JsonObject row)
    {
        foreach (var (key, value) in row) _summary[key] = value?.DeepClone();
        if (row["_runtime"]?.GetValue<double>() is { } runtime)
            _summary["_wandb"] = new JsonObject { ["runtime"] = (long)runtime };
    }

    public void Heartbeat()
    {
        if (Header["created"]?.GetValue<bool>() == true) Stream(new JsonObject());
    }

    public int Deliver(IReadOnlyList<JsonObject> pending)
    {
        EnsureCreated();
        var first = pending[0];
        switch (first["kind"]?.GetValue<string>())
        {
            case "file":
            {
                string name = first["name"]!.GetValue<string>();
                string local = Path.Combine(_outbox.Folder, first["snapshot"]!.GetValue<string>());
                if (File.Exists(local)) _api.UploadRunFile(Entity, Project, RunId, name, local);
                Stream(new JsonObject { ["uploaded"] = new JsonArray(name) });
                return 1;
            }
            case "finish":
                Stream(new JsonObject
                {
                    ["files"] = new JsonObject { ["wandb-summary.json"] = SummaryFile() },
                    ["complete"] = true, ["exitcode"] = first["exitcode"]!.GetValue<int>(),
                });
                return 1;
            default:
                return StreamLines(pending);
        }
    }

    /// <summary>The leading history and console lines, in one post (each file's lines consecutive from its first offset).</summary>
    private int StreamLines(IReadOnlyList<JsonObject> pending)
    {
        var history = new JsonArray();
        var output = new JsonArray();
        long? historyStart = null, outputStart = null;
        var rows = new List<JsonObject>();
        int taken = 0;
        foreach (var entry in pending)
        {
            string? kind = entry["kind"]?.GetValue<string>();
            long offset = entry["offset"]?.GetValue<long>() ?? 0;
            if (kind == "history")
            {
                if (historyStart is { } h && h + history.Count != offset) break;
                historyStart ??= offset;
                var row = entry["row"]!.AsObject();
                history.Add(ExtendedJson(row));
                rows.Add(row);
            }
            else if (kind == "output")
            {
                if (outputStart is { } o && o + output.Count != offset) break;
                outputStart ??= offset;
                output.Add(entry["line"]!.GetValue<string>());
            }
            else break;
            taken++;
        }
        var summary = _summary.DeepClone().AsObject();
        foreach (var row in rows) foreach (var (key, value) in row) summary[key] = value?.DeepClone();
        var files = new JsonObject();
        historyStart += Shift("history");
        outputStart += Shift("output");
        if (historyStart is { } hs)
        {
            files["wandb-history.jsonl"] = new JsonObject { ["offset"] = hs, ["content"] = history };
            files["wandb-summary.json"] = new JsonObject { ["offset"] = 0, ["content"] = new JsonArray(ExtendedJson(summary)) };
        }
        if (outputStart is { } os) files["output.log"] = new JsonObject { ["offset"] = os, ["content"] = output };
        Stream(new JsonObject { ["files"] = files });
        foreach (var row in rows) Merge(row);
        return taken;
    }

    /// <summary>Lines the server had before an offline journal's first line (0 for a new run).</summary>
    private long Shift(string kind) => long.TryParse(Header[$"{kind}_shift"]?.ToJsonString(), out var shift) ? shift : 0;

    private JsonObject SummaryFile() => new() { ["offset"] = 0, ["content"] = new JsonArray(ExtendedJson(_summary)) };

    /// <summary>
    /// A history or summary line as wandb's core writes it: "extended JSON" with bare NaN, Infinity and
    /// -Infinity (the journal keeps them as the strings System.Text.Json writes for named float literals).
    /// </summary>
    internal static string ExtendedJson(JsonObject row) =>
        System.Text.RegularExpressions.Regex.Replace(row.ToJsonString(JsonOptions), "(?<=:)\"(NaN|-?Infinity)\"(?=[,}])", "$1");

    private static readonly System.Text.Json.JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
    };

    private string Entity => Header["entity"]!.GetValue<string>();
    private string Project => Header["project"]!.GetValue<string>();
    private string RunId => Header["run_id"]!.GetValue<string>();

    private void Stream(JsonObject body) => _api.FileStream(Entity, Project, RunId, body);

    /// <summary>An offline run is created (or resumed) on the server before its first entry is sent.</summary>
    private void EnsureCreated()
    {
        var header = Header.DeepClone().AsObject();
        if (header["created"]?.GetValue<bool>() == true) return;
        string? entity = header["entity"]?.GetValue<string>() is { Length: > 0 } e ? e : null;
        var config = new JsonObject();
        foreach (var (key, value) in header["config"]!.AsObject())
            if (key != "_wandb") config[key] = value?["value"]?.DeepClone();
        WandbRun.Created created;
        try
        {
            created = WandbRun.Upsert(_api, entity, header["project"]!.GetValue<string>(), header["run_id"]!.GetValue<string>(),
                header["display_name"]?.GetValue<string>(), config, header["resume"]?.GetValue<string>(), header);
        }
        catch (Runtime.NetworkException ex) { throw new DeliveryException(ex.Message, retryable: true, ex); }
        catch (UserInputException ex) { throw new DeliveryException(ex.Message, retryable: false, ex); }
        // An offline run that resumed an existing one continues after the lines the server already has.
        header["history_shift"] = created.HistoryLines;
        header["output_shift"] = created.OutputLines;
        header["entity"] = created.Entity;
        header["project"] = created.Project;
        header["storage_id"] = created.StorageId;
        header["display_name"] = created.DisplayName;
        header["created"] = true;
        _outbox.Header = header;
        _header = header;
    }
}
