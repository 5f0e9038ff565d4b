using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tracking.Wandb;

/// <summary>
/// Where wandb is and who we are to it, read as the official client reads it: the base URL from
/// WANDB_BASE_URL (default https://api.wandb.ai), the API key from WANDB_API_KEY or the netrc file
/// (NETRC, else ~/.netrc) entry for the base URL's host[:port], and WANDB_MODE (online, offline/dryrun, disabled).
/// </summary>
public sealed record WandbSettings(string BaseUrl, string? ApiKey, string Mode)
{
    public const string DefaultBaseUrl = "https://api.wandb.ai";

    public bool Offline => Mode is "offline" or "dryrun";
    public bool Disabled => Mode == "disabled";

    public static WandbSettings FromEnvironment()
    {
        string baseUrl = (Environment.GetEnvironmentVariable("WANDB_BASE_URL") is { Length: > 0 } b ? b : DefaultBaseUrl).TrimEnd('/');
        string mode = Environment.GetEnvironmentVariable("WANDB_MODE") is { Length: > 0 } m ? m.Trim().ToLowerInvariant() : "online";
        if (mode is not ("online" or "offline" or "dryrun" or "disabled" or "shared"))
            throw new UserInputException($"WANDB_MODE \"{mode}\" is not one of online, offline, dryrun, disabled");
        string? key = Environment.GetEnvironmentVariable("WANDB_API_KEY") is { Length: > 0 } k ? k.Trim() : NetrcPassword(new Uri(baseUrl));
        return new WandbSettings(baseUrl, key, mode == "shared" ? "online" : mode);
    }

    /// <summary>The password of the netrc entry whose machine is the URL's host (with :port when not the default).</summary>
    internal static string? NetrcPassword(Uri baseUrl)
    {
        string? path = Environment.GetEnvironmentVariable("NETRC") is { Length: > 0 } n ? n.Replace("~", Home) : null;
        path ??= new[] { Path.Combine(Home, ".netrc"), Path.Combine(Home, "_netrc") }.FirstOrDefault(File.Exists);
        if (path is null || !File.Exists(path)) return null;
        string machine = baseUrl.IsDefaultPort ? baseUrl.Host : $"{baseUrl.Host}:{baseUrl.Port}";
        var tokens = File.ReadAllText(path).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < tokens.Length - 1; i++)
        {
            if (tokens[i] != "machine" || tokens[i + 1] != machine) continue;
            for (int j = i + 2; j < tokens.Length - 1 && tokens[j] != "machine"; j++)
                if (tokens[j] == "password") return tokens[j + 1];
        }
        return null;
    }

    private static string Home => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>Without a key: what to do about it (never the key itself in any message).</summary>
    public string RequireKey() => ApiKey ?? throw new UserInputException(
        $"wandb: no API key for {BaseUrl}: set WANDB_API_KEY, or add a netrc entry (machine {new Uri(BaseUrl).Authority}) as `wandb login` does; " +
        "or set WANDB_MODE=offline to log locally and `dalle2 tracker sync` later");
}

/// <summary>
/// wandb's HTTP API as its Go core speaks it (core/api/graphql/*.graphql, core/internal/filestream):
/// GraphQL at {base}/graphql with basic auth "api:KEY", the run's file_stream endpoint for history,
/// console and summary lines, and createRunFiles upload URLs that take a PUT without credentials.
/// Hand-written because wandb publishes no .NET client.
/// </summary>
public sealed class WandbApi(WandbSettings settings, IoTimeouts? timeouts = null)
{
    private readonly ServiceHttp _http = new("wandb", timeouts ?? IoTimeouts.Default);
    public WandbSettings Settings { get; } = settings;

    private AuthenticationHeaderValue Auth =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + Settings.RequireKey())));

    /// <summary>Credentials go only to URLs under the base URL, never to signed storage URLs.</summary>
    private bool UnderBase(string url) => url.StartsWith(Settings.BaseUrl + "/", StringComparison.Ordinal);

    public JsonObject GraphQL(string operation, string query, JsonObject variables)
    {
        var body = new JsonObject { ["query"] = query, ["variables"] = variables, ["operationName"] = operation };
        using var response = _http.Send(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, Settings.BaseUrl + "/graphql") { Content = ServiceHttp.Json(body) };
            request.Headers.Authorization = Auth;
            request.Headers.UserAgent.ParseAdd("dalle2sharp");
            return request;
        }, operation);
        var json = ServiceHttp.ReadJson(response, $"wandb {operation}");
        if (json["errors"] is JsonArray { Count: > 0 } errors)
            throw new DeliveryException($"wandb {operation}: {string.Join("; ", errors.Select(e => e?["message"]?.ToString()))}", retryable: false);
        return json["data"] as JsonObject ?? throw new DeliveryException($"wandb {operation}: no data in the answer", retryable: false);
    }

    public void FileStream(string entity, string project, string run, JsonObject body)
    {
        string path = string.Join('/', new[] { entity, project, run }.Select(Uri.EscapeDataString));
        string url = $"{Settings.BaseUrl}/files/{path}/file_stream";
        using var _ = _http.Send(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = ServiceHttp.Json(body) };
            request.Headers.Authorization = Auth;
            return request;
        }, "file_stream", Encoding.UTF8.GetByteCount(body.ToJsonString()));
    }

    /// <summary>createRunFiles, then a PUT of each file to its upload URL with exactly the headers the server gave.</summary>
    public void UploadRunFile(string entity, string project, string run, string name, string localFile)
    {
        var data = GraphQL("CreateRunFiles", Queries.CreateRunFiles,
            new JsonObject { ["entity"] = entity, ["project"] = project, ["run"] = run, ["files"] = new JsonArray(name) });
        var created = data["createRunFiles"] ?? throw new DeliveryException("wandb CreateRunFiles: no createRunFiles in the answer", false);
        string? uploadUrl = (created["files"] as JsonArray)?.FirstOrDefault(f => f?["name"]?.ToString() == name)?["uploadUrl"]?.ToString();
        if (uploadUrl is null) throw new DeliveryException($"wandb CreateRunFiles: no upload URL for {name} (run {entity}/{project}/{run} not " +
            $"accessible?)", false);
        var headers = (created["uploadHeaders"] as JsonArray ?? []).Select(h => h!.ToString()).Where(h => h.Contains(':'))
            .Select(h => (Key: h[..h.IndexOf(':')].Trim(), Value: h[(h.IndexOf(':') + 1)..].Trim())).ToList();
        long size = new FileInfo(localFile).Length;
        using var _ = _http.Send(() =>
        {
            var content = new StreamContent(File.OpenRead(localFile));
            content.Headers.ContentLength = size;
            var request = new HttpRequestMessage(HttpMethod.Put, uploadUrl) { Content = content };
            foreach (var (key, value) in headers)
                if (!request.Headers.TryAddWithoutValidation(key, value)) content.Headers.TryAddWithoutValidation(key, value);
            if (UnderBase(uploadUrl)) request.Headers.Authorization = Auth;
            return request;
        }, $"upload of {name}", size);
    }

    /// <summary>wandb.restore: the file's URL from the RunFiles query, downloaded atomically with progress.</summary>
    public void DownloadRunFile(string entity, string project, string run, string name, string target, Action<string>? progress)
    {
        var data = GraphQL("RunFiles", Queries.RunFiles, new JsonObject
        {
            ["project"] = project, ["entity"] = entity, ["name"] = run, ["fileNames"] = new JsonArray(name), ["upload"] = false,
        });
        var runNode = data["project"]?["run"] ?? throw new UserInputException($"wandb run {entity}/{project}/{run} does not exist or is not " +
            $"accessible");
        var node = (runNode["files"]?["edges"] as JsonArray)?.Select(e => e?["node"]).FirstOrDefault(n => n?["name"]?.ToString() == name);
        if (node is null || node["md5"]?.ToString() == "0" || node["url"] is null)
            throw new UserInputException($"wandb run {entity}/{project}/{run} has no file {name}");
        string url = node["url"]!.ToString();
        var headers = UnderBase(url) ? new Dictionary<string, string> { ["Authorization"] = Auth.ToString() } : null;
        HttpStreams.Download(url, target, progress, _http.Timeouts, headers: headers);
    }
}
