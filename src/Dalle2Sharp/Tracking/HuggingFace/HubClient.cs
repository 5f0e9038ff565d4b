using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tracking.HuggingFace;

/// <summary>
/// The Hugging Face Hub's commit API as huggingface_hub and huggingface.js speak it: repo creation,
/// preupload (the server decides regular vs LFS), the Git LFS batch API with basic and multipart
/// transfers (presigned URLs, no credentials), and one NDJSON commit per save. Endpoint from
/// HF_ENDPOINT (default https://huggingface.co); the token is sent only to the endpoint. Hand-written
/// because the Hub publishes no .NET client.
/// </summary>
public sealed class HubClient
{
    public const string DefaultEndpoint = "https://huggingface.co";
    private readonly ServiceHttp _http;
    private readonly string _token;

    public HubClient(string repoId, string token, IoTimeouts? timeouts = null, string? endpoint = null)
    {
        Endpoint = ResolveEndpoint(endpoint);
        if (repoId.Split('/') is not [{ Length: > 0 }, { Length: > 0 }])
            throw new UserInputException($"huggingface_repo \"{repoId}\" is not of the form owner/name");
        RepoId = repoId;
        _token = token;
        _http = new ServiceHttp($"huggingface repo {repoId}", timeouts ?? IoTimeouts.Default);
    }

    public string Endpoint { get; }
    public string RepoId { get; }

    /// <summary>Files sent inline (base64 in the commit) are small on the Hub (its docs: LFS above 10 MB); a bound, not a read of any size.</summary>
    public const long MaxInlineBytes = 10L << 20;

    /// <summary>The given endpoint, else HF_ENDPOINT, else https://huggingface.co; without a trailing slash.</summary>
    public static string ResolveEndpoint(string? endpoint = null)
    {
        string? env = Environment.GetEnvironmentVariable("HF_ENDPOINT");
        return (endpoint ?? (string.IsNullOrEmpty(env) ? DefaultEndpoint : env)).TrimEnd('/');
    }

    /// <summary>
    /// The token as huggingface_hub finds it: the config's token_path first (upstream's option), then
    /// HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the file HF_TOKEN_PATH, HF_HOME/token, ~/.cache/huggingface/token.
    /// </summary>
    public static string? FindToken(string? tokenPath)
    {
        static string? Clean(string? t) => t?.Replace("\r", "").Replace("\n", "").Trim() is { Length: > 0 } c ? c : null;
        static string? FromFile(string? path) => path is not null && File.Exists(path) ? Clean(File.ReadAllText(path)) : null;
        if (tokenPath is not null)
            return FromFile(tokenPath) ?? throw new UserInputException($"tracker.save.token_path {tokenPath} does not exist or is empty");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string hfHome = Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } h ? h
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x : Path.Combine(home, ".cache"),
                "huggingface");
        return Clean(Environment.GetEnvironmentVariable("HF_TOKEN")) ?? Clean(Environment.GetEnvironmentVariable("HUGGING_FACE_HUB_TOKEN"))
            ?? FromFile(Environment.GetEnvironmentVariable("HF_TOKEN_PATH") is { Length: > 0 } p ? p : Path.Combine(hfHome, "token"));
    }

    private HttpRequestMessage Api(HttpMethod method, string path, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, Endpoint + path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        request.Headers.UserAgent.ParseAdd("dalle2sharp/0.1");
        return request;
    }

    /// <summary>whoami-v2: the token works (a refusal is a clear error before any work).</summary>
    public string WhoAmI()
    {
        using var response = _http.Send(() => Api(HttpMethod.Get, "/api/whoami-v2"), "whoami");
        return ServiceHttp.ReadJson(response, "whoami")["name"]?.GetValue<string>() ?? "?";
    }

    /// <summary>Creates the model repo (private by the owner's default); an existing repo (409) is fine.</summary>
    public void CreateRepo()
    {
        var (owner, name) = (RepoId.Split('/')[0], RepoId.Split('/')[1]);
        using var _ = _http.Send(() => Api(HttpMethod.Post, "/api/repos/create",
                ServiceHttp.Json(new JsonObject { ["name"] = name, ["organization"] = owner })),
            "create repo", acceptable: code => code == HttpStatusCode.Conflict);
    }

    /// <summary>Uploads one file to <paramref name="pathInRepo"/> on main as one commit with <paramref name="message"/>.</summary>
    public string UploadFile(string localFile, string pathInRepo, string message)
    {
        long size = new FileInfo(localFile).Length;
        var sample = new byte[Math.Min(512, size)];
        using (var f = File.OpenRead(localFile)) f.ReadExactly(sample);
        using var pre = _http.Send(() => Api(HttpMethod.Post, $"/api/models/{RepoId}/preupload/main", ServiceHttp.Json(new JsonObject
        {
            ["files"] = new JsonArray(new JsonObject { ["path"] = pathInRepo, ["sample"] = Convert.ToBase64String(sample), ["size"] = size }),
        })), "preupload");
        var mode = (ServiceHttp.ReadJson(pre, "preupload")["files"] as JsonArray)?.FirstOrDefault(f => f?["path"]?.ToString() == pathInRepo);
        bool lfs = size > 0 && mode?["uploadMode"]?.GetValue<string>() == "lfs";
        if (!lfs && size > MaxInlineBytes)
            throw new DeliveryException($"preupload: the Hub asks for {pathInRepo} ({size:N0} bytes) inline; files over " +
                                        $"{MaxInlineBytes:N0} bytes go through LFS", retryable: false);

        JsonObject operation;
        if (lfs)
        {
            string oid = Sha256(localFile);
            UploadLfs(localFile, oid, size);
            operation = new JsonObject { ["key"] = "lfsFile",
                ["value"] = new JsonObject { ["path"] = pathInRepo, ["algo"] = "sha256", ["oid"] = oid, ["size"] = size } };
        }
        else
            operation = new JsonObject { ["key"] = "file", ["value"] = new JsonObject
                { ["content"] = Convert.ToBase64String(File.ReadAllBytes(localFile)), ["path"] = pathInRepo, ["encoding"] = "base64" } };
        var header = new JsonObject { ["key"] = "header", ["value"] = new JsonObject { ["summary"] = message, ["description"] = "" } };
        string body = header.ToJsonString() + "\n" + operation.ToJsonString() + "\n";
        // A commit is not repeated here (a lost answer could mean it happened); the outbox retries the whole save.
        using var commit = _http.Send(() => Api(HttpMethod.Post, $"/api/models/{RepoId}/commit/main",
            new StringContent(body, Encoding.UTF8, "application/x-ndjson")), "commit", Encoding.UTF8.GetByteCount(body), retry: false);
        return ServiceHttp.ReadJson(commit, "commit")["commitOid"]?.GetValue<string>() ?? "";
    }

    private static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static readonly MediaTypeWithQualityHeaderValue LfsJson = new("application/vnd.git-lfs+json");

    /// <summary>The LFS batch request, then a basic PUT or a multipart upload (parts + completion), then verify when asked.</summary>
    private void UploadLfs(string localFile, string oid, long size)
    {
        var batch = new JsonObject
        {
            ["operation"] = "upload", ["transfers"] = new JsonArray("basic", "multipart"),
            ["objects"] = new JsonArray(new JsonObject { ["oid"] = oid, ["size"] = size }),
            ["hash_algo"] = "sha256", ["ref"] = new JsonObject { ["name"] = "main" },
        };
        using var response = _http.Send(() =>
        {
            var request = Api(HttpMethod.Post, $"/{RepoId}.git/info/lfs/objects/batch", ServiceHttp.Json(batch, "application/vnd.git-lfs+json"));
            request.Headers.Accept.Add(LfsJson);
            return request;
        }, "LFS batch");
        var obj = (ServiceHttp.ReadJson(response, "LFS batch")["objects"] as JsonArray)?.FirstOrDefault(o => o?["oid"]?.ToString() == oid)
            ?? throw new DeliveryException("LFS batch: the answer does not list the object", retryable: false);
        if (obj["error"] is { } error) throw new DeliveryException($"LFS batch: {error["code"]} {error["message"]}", retryable: false);
        if (obj["actions"]?["upload"] is not JsonObject upload) return;   // already stored
        string href = upload["href"]!.GetValue<string>();
        var headers = upload["header"] as JsonObject;
        if (headers?["chunk_size"] is { } chunkNode)
            UploadMultipart(localFile, oid, size, href, long.Parse(chunkNode.ToString()), headers);
        else
        {
            using var _ = _http.Send(() => new HttpRequestMessage(HttpMethod.Put, href) { Content = FileRange(localFile, 0, size) }, "LFS upload",
                size);
        }
        if (obj["actions"]?["verify"]?["href"]?.GetValue<string>() is { } verify)
        {
            using var _ = _http.Send(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Post, verify)
                    { Content = ServiceHttp.Json(new JsonObject { ["oid"] = oid, ["size"] = size }, "application/vnd.git-lfs+json") };
                if (verify.StartsWith(Endpoint + "/", StringComparison.Ordinal))
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
                return request;
            }, "LFS verify");
        }
    }

    private void UploadMultipart(string localFile, string oid, long size, string completionUrl, long chunkSize, JsonObject headers)
    {
        var parts = headers.Where(kv => kv.Key.All(char.IsAsciiDigit)).OrderBy(kv => int.Parse(kv.Key)).ToList();
        if (chunkSize <= 0 || parts.Count != (size + chunkSize - 1) / chunkSize)
            throw new DeliveryException($"LFS multipart: {parts.Count} part URLs for {size} bytes in chunks of {chunkSize}", retryable: false);
        var etags = new JsonArray();
        for (int i = 0; i < parts.Count; i++)
        {
            long offset = i * chunkSize, length = Math.Min(chunkSize, size - offset);
            string url = parts[i].Value!.GetValue<string>();
            using var response = _http.Send(() => new HttpRequestMessage(HttpMethod.Put, url) { Content = FileRange(localFile, offset, length) },
                $"LFS part {i + 1}/{parts.Count}", length);
            string etag = response.Headers.ETag?.ToString()
                ?? throw new DeliveryException($"LFS part {i + 1}: the storage server returned no ETag", retryable: true);
            etags.Add(new JsonObject { ["partNumber"] = i + 1, ["etag"] = etag });
        }
        using var _ = _http.Send(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, completionUrl)
                { Content = ServiceHttp.Json(new JsonObject { ["oid"] = oid, ["parts"] = etags.DeepClone() }, "application/vnd.git-lfs+json") };
            request.Headers.Accept.Add(LfsJson);
            return request;
        }, "LFS multipart completion");
    }

    /// <summary>A byte range of a file as a request body with a known length (presigned PUTs reject chunked bodies).</summary>
    private static HttpContent FileRange(string file, long offset, long length)
    {
        var stream = File.OpenRead(file);
        stream.Seek(offset, SeekOrigin.Begin);
        var content = new StreamContent(new BoundedStream(stream, length));
        content.Headers.ContentLength = length;
        return content;
    }

    private sealed class BoundedStream(Stream inner, long length) : ForwardOnlyStream
    {
        private long _left = length;

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer, offset, (int)Math.Min(count, _left));
            _left -= n;
            return n;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
