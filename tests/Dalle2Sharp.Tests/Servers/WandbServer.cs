using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tests.Servers;

/// <summary>
/// A stand-in of the wandb API as its clients see it (wandb/core): GraphQL at /graphql (Viewer,
/// UpsertBucket, RunResumeStatus, CreateRunFiles, RunFiles) behind basic auth "api:KEY", the run's
/// file_stream endpoint (history, console and summary lines at offsets; uploaded; complete + exitcode),
/// signed upload URLs that take a PUT without credentials, and download URLs. It keeps each run's
/// state so tests can compare what arrived with what was logged, and rejects out-of-order offsets.
/// </summary>
public sealed class WandbServer : StandInServer
{
    public const string DefaultEntity = "tester";

    public WandbServer(string apiKey = "test-key-0123456789012345678901234567890123456789") => ApiKey = apiKey;

    public string ApiKey { get; }

    public sealed class Run
    {
        public string StorageId = "";
        public string Entity = "", Project = "", Name = "", DisplayName = "";
        public JsonObject Config = [];
        public readonly List<string> History = [];
        public readonly List<string> Output = [];
        public JsonObject Summary = [];
        public readonly List<string> Uploaded = [];
        public readonly ConcurrentDictionary<string, byte[]> Files = new();
        public int? ExitCode;
        public bool Complete;
        public int Upserts;
    }

    public ConcurrentDictionary<string, Run> Runs { get; } = new();

    public Run Get(string project, string name) => Runs.Values.Single(r => r.Project == project && r.Name == name);

    public Dictionary<string, string> Environment => new() { ["WANDB_BASE_URL"] = Url, ["WANDB_API_KEY"] = ApiKey, ["WANDB_MODE"] = "online" };

    private bool Authorized(RecordedRequest r) =>
        r.Header("authorization") == "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + ApiKey));

    protected override void Handle(HttpListenerContext ctx, RecordedRequest r)
    {
        if (r.Method == "PUT" && r.Path.StartsWith("/storage/"))
        {
            // Signed storage URLs carry no credentials (the official client never sends the key there).
            if (r.Header("authorization") is not null) { Reply(ctx, 400, "credentials sent to a storage URL"); return; }
            if (!r.Query.Contains("signature=")) { Reply(ctx, 403, "unsigned"); return; }
            var parts = r.Path["/storage/".Length..].Split('/', 4);
            FindRun(parts[0], parts[1], parts[2])!.Files[parts[3]] = r.Body;
            Reply(ctx, 200, "");
            return;
        }
        if (r.Method == "GET" && r.Path.StartsWith("/storage/"))
        {
            var parts = r.Path["/storage/".Length..].Split('/', 4);
            if (FindRun(parts[0], parts[1], parts[2]) is { } run && run.Files.TryGetValue(parts[3], out var bytes)) Reply(ctx, 200, bytes);
            else Reply(ctx, 404, "no such file");
            return;
        }
        if (!Authorized(r)) { Reply(ctx, 401, "{\"errors\":[{\"message\":\"unauthorized\"}]}", "application/json"); return; }
        if (r.Method == "POST" && r.Path == "/graphql") { ReplyJson(ctx, GraphQL(r.Json)); return; }
        if (r.Method == "POST" && r.Path.EndsWith("/file_stream"))
        {
            var parts = r.Path["/files/".Length..].Split('/');
            var run = FindRun(parts[0], parts[1], parts[2]);
            if (run is null) { Reply(ctx, 404, "no such run"); return; }
            string? error = FileStream(run, r.Json);
            if (error is null) ReplyJson(ctx, new JsonObject { ["exitcode"] = null, ["limits"] = new JsonObject() });
            else Reply(ctx, 400, error);
            return;
        }
        Reply(ctx, 404, "not found");
    }

    /// <summary>A history or summary line: wandb's extended JSON (bare NaN / Infinity) read with those values as strings.</summary>
    public static JsonObject ParseLine(string line) =>
        JsonNode.Parse(System.Text.RegularExpressions.Regex.Replace(line, "(?<=:)(NaN|-?Infinity)(?=[,}])", "\"$1\""))!.AsObject();

    private Run? FindRun(string entity, string project, string name) =>
        Runs.TryGetValue($"{entity}/{project}/{name}", out var run) ? run : null;

    private static string? FileStream(Run run, JsonObject body)
    {
        lock (run)
        {
            if (body["files"] is JsonObject files)
            {
                foreach (var (file, value) in files)
                {
                    long offset = value!["offset"]!.GetValue<long>();
                    var content = value["content"]!.AsArray().Select(c => c!.GetValue<string>()).ToList();
                    var target = file switch { "wandb-history.jsonl" => run.History, "output.log" => run.Output, _ => null };
                    if (file == "wandb-summary.json")
                    {
                        if (offset != 0) return "summary offset must be 0";
                        run.Summary = ParseLine(content[^1]);
                        continue;
                    }
                    if (target is null) return $"unknown file {file}";
                    // Offsets overwrite from that line on (how console progress lines are rewritten); a gap is a client bug.
                    if (offset > target.Count) return $"{file}: offset {offset} leaves a gap after {target.Count} lines";
                    for (int i = 0; i < content.Count; i++)
                    {
                        if (offset + i < target.Count) target[(int)offset + i] = content[i];
                        else target.Add(content[i]);
                    }
                }
            }
            if (body["uploaded"] is JsonArray uploaded) run.Uploaded.AddRange(uploaded.Select(u => u!.GetValue<string>()));
            if (body["complete"]?.GetValue<bool>() == true)
            {
                run.Complete = true;
                run.ExitCode = body["exitcode"]?.GetValue<int>();
            }
            return null;
        }
    }

    private JsonObject GraphQL(JsonObject body)
    {
        string op = body["operationName"]!.GetValue<string>();
        var v = body["variables"]!.AsObject();
        string query = body["query"]!.GetValue<string>();
        if (!query.Contains(op)) return Error($"operation {op} not in the query");
        switch (op)
        {
            case "Viewer":
                return Data(new JsonObject { ["viewer"] = new JsonObject { ["id"] = "VXNlcjox", ["entity"] = DefaultEntity, ["username"] = DefaultEntity } });
            case "UpsertBucket":
            {
                string entity = v["entity"]?.GetValue<string>() ?? DefaultEntity, project = v["project"]!.GetValue<string>();
                string name = v["name"]!.GetValue<string>();
                var run = Runs.GetOrAdd($"{entity}/{project}/{name}", _ => new Run
                {
                    StorageId = Convert.ToBase64String(Encoding.UTF8.GetBytes($"Run:v1:{name}:{project}:{entity}")),
                    Entity = entity, Project = project, Name = name, DisplayName = $"stand-in-{name}",
                });
                lock (run)
                {
                    run.Upserts++;
                    if (v["id"]?.GetValue<string>() is { } id && id != run.StorageId) return Error("id does not match the run's storage id");
                    if (v["displayName"]?.GetValue<string>() is { } display) run.DisplayName = display;
                    if (v["config"]?.GetValue<string>() is { } config) run.Config = JsonNode.Parse(config)!.AsObject();
                    return Data(new JsonObject { ["upsertBucket"] = new JsonObject { ["bucket"] = Bucket(run), ["inserted"] = run.Upserts == 1 } });
                }
            }
            case "RunResumeStatus":
            {
                string entity = v["entity"]?.GetValue<string>() ?? DefaultEntity;
                var run = FindRun(entity, v["project"]!.GetValue<string>(), v["name"]!.GetValue<string>());
                JsonObject? bucket = null;
                if (run is not null)
                    lock (run)
                    {
                        bucket = Bucket(run);
                        bucket["summaryMetrics"] = run.Summary.ToJsonString();
                        bucket["logLineCount"] = run.Output.Count;
                        bucket["eventsLineCount"] = 0;
                        bucket["historyTail"] = new JsonArray(run.History.TakeLast(1).Select(h => (JsonNode?)h).ToArray()).ToJsonString();
                        bucket["wandbConfig"] = run.Config["_wandb"]?["value"] is JsonObject w ? w.ToJsonString() : "{}";
                    }
                return Data(new JsonObject { ["model"] = new JsonObject { ["id"] = "UHJvamVjdDox", ["name"] = v["project"]?.DeepClone(), ["bucket"] = bucket } });
            }
            case "CreateRunFiles":
            {
                var run = FindRun(v["entity"]!.GetValue<string>(), v["project"]!.GetValue<string>(), v["run"]!.GetValue<string>());
                if (run is null) return Data(new JsonObject { ["createRunFiles"] = new JsonObject { ["runID"] = "", ["files"] = new JsonArray() } });
                var files = new JsonArray(v["files"]!.AsArray().Select(f => (JsonNode?)new JsonObject
                {
                    ["name"] = f!.GetValue<string>(),
                    ["uploadUrl"] = $"{StorageUrl}/storage/{run.Entity}/{run.Project}/{run.Name}/{f.GetValue<string>()}?signature=abc",
                }).ToArray());
                return Data(new JsonObject
                {
                    ["createRunFiles"] = new JsonObject
                        { ["runID"] = run.StorageId, ["uploadHeaders"] = new JsonArray("X-Stand-In-Header:present"), ["files"] = files },
                });
            }
            case "RunFiles":
            {
                var run = FindRun(v["entity"]!.GetValue<string>(), v["project"]!.GetValue<string>(), v["name"]!.GetValue<string>());
                if (run is null) return Data(new JsonObject { ["project"] = new JsonObject { ["internalId"] = "p", ["run"] = null } });
                var edges = new JsonArray(v["fileNames"]!.AsArray().Select(n => n!.GetValue<string>()).Select(n => (JsonNode?)new JsonObject
                {
                    ["node"] = new JsonObject
                    {
                        ["id"] = n, ["name"] = n, ["url"] = $"{StorageUrl}/storage/{run.Entity}/{run.Project}/{run.Name}/{n}",
                        ["md5"] = run.Files.ContainsKey(n) ? "bWQ1" : "0", ["sizeBytes"] = run.Files.TryGetValue(n, out var b) ? b.Length : 0,
                    },
                    ["cursor"] = n,
                }).ToArray());
                return Data(new JsonObject { ["project"] = new JsonObject { ["internalId"] = "p",
                    ["run"] = new JsonObject { ["fileCount"] = run.Files.Count, ["files"] = new JsonObject { ["edges"] = edges } } } });
            }
            default:
                return Error($"unknown operation {op}");
        }
    }

    private static JsonObject Bucket(Run run) => new()
    {
        ["id"] = run.StorageId, ["name"] = run.Name, ["displayName"] = run.DisplayName, ["description"] = null, ["config"] = run.Config.ToJsonString(),
        ["sweepName"] = null, ["historyLineCount"] = run.History.Count,
        ["project"] = new JsonObject { ["id"] = "UHJvamVjdDox", ["name"] = run.Project, ["entity"] = new JsonObject { ["id"] = "RW50", ["name"] = run.Entity } },
    };

    private static JsonObject Data(JsonObject data) => new() { ["data"] = data };
    private static JsonObject Error(string message) => new() { ["errors"] = new JsonArray(new JsonObject { ["message"] = message }) };
}
