using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tests.Servers;

/// <summary>
/// A stand-in of the Hugging Face Hub as huggingface_hub sees it: whoami-v2, repos/create (409 when
/// it exists), preupload (files over <see cref="LfsThreshold"/> bytes go to LFS), the Git LFS batch API
/// (basic transfer, or multipart above <see cref="MultipartThreshold"/> with numbered part URLs and a
/// completion call; presigned, so credentials there are refused), verify, NDJSON commits and resolve
/// downloads. It checks every sha256, size and ETag, and keeps each repo's files and commits.
/// </summary>
public sealed class HubServer : StandInServer
{
    public HubServer(string token = "hf_standin_token_0123456789") => Token = token;

    public string Token { get; }
    public long LfsThreshold { get; set; } = 1024;
    public long MultipartThreshold { get; set; } = 64 * 1024;
    public int ChunkSize { get; set; } = 16 * 1024;

    public sealed class Repo
    {
        public readonly ConcurrentDictionary<string, byte[]> Files = new();
        public readonly List<(string Summary, List<string> Paths)> Commits = [];
    }

    public ConcurrentDictionary<string, Repo> Repos { get; } = new();
    private readonly ConcurrentDictionary<string, byte[]> _lfs = new();
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<int, byte[]>> _parts = new();

    public Dictionary<string, string> Environment => new() { ["HF_ENDPOINT"] = Url, ["HF_TOKEN"] = Token };

    private bool Authorized(RecordedRequest r) => r.Header("authorization") == "Bearer " + Token;

    private static string Sha256(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    protected override void Handle(HttpListenerContext ctx, RecordedRequest r)
    {
        string p = r.Path;
        // Presigned storage URLs: no credentials.
        if (p.StartsWith("/lfs-storage/"))
        {
            if (r.Header("authorization") is not null) { Reply(ctx, 400, "credentials sent to a presigned URL"); return; }
            var parts = p["/lfs-storage/".Length..].Split('/');
            if (r.Method == "PUT" && parts.Length == 1) { _lfs[parts[0]] = r.Body; Reply(ctx, 200, ""); return; }
            if (r.Method == "PUT" && parts is [var oid, "part", var n])
            {
                _parts.GetOrAdd(oid, _ => new())[int.Parse(n)] = r.Body;
                Reply(ctx, 200, [], headers: new Dictionary<string, string> { ["ETag"] = $"\"{Convert.ToHexStringLower(MD5.HashData(r.Body))}\"" });
                return;
            }
        }
        if (r.Method == "POST" && p.StartsWith("/lfs-complete/"))
        {
            string oid = p["/lfs-complete/".Length..];
            var body = r.Json;
            if (body["oid"]?.GetValue<string>() != oid) { Reply(ctx, 400, "oid mismatch"); return; }
            var stored = _parts.GetValueOrDefault(oid) ?? new();
            var assembled = new MemoryStream();
            foreach (var part in body["parts"]!.AsArray())
            {
                int n = part!["partNumber"]!.GetValue<int>();
                if (!stored.TryGetValue(n, out var bytes)) { Reply(ctx, 400, $"part {n} missing"); return; }
                if (part["etag"]!.GetValue<string>() != $"\"{Convert.ToHexStringLower(MD5.HashData(bytes))}\"") { Reply(ctx, 400, $"etag of part {n}"); return; }
                assembled.Write(bytes);
            }
            if (Sha256(assembled.ToArray()) != oid) { Reply(ctx, 400, "assembled object does not match its oid"); return; }
            _lfs[oid] = assembled.ToArray();
            ReplyJson(ctx, new JsonObject());
            return;
        }
        if (!Authorized(r)) { Reply(ctx, 401, "invalid credentials"); return; }
        if (r.Method == "GET" && p == "/api/whoami-v2") { ReplyJson(ctx, new JsonObject { ["type"] = "user", ["name"] = "stand-in-user" }); return; }
        if (r.Method == "POST" && p == "/api/repos/create")
        {
            var body = r.Json;
            string id = $"{body["organization"]?.GetValue<string>() ?? "stand-in-user"}/{body["name"]!.GetValue<string>()}";
            bool created = Repos.TryAdd(id, new Repo());
            ReplyJson(ctx, new JsonObject { ["url"] = $"{Url}/{id}" }, created ? 200 : 409);
            return;
        }
        if (p.StartsWith("/api/models/") && r.Method == "POST")
        {
            var rest = p["/api/models/".Length..].Split('/');
            string id = $"{rest[0]}/{rest[1]}";
            if (!Repos.TryGetValue(id, out var repo)) { Reply(ctx, 404, [], headers: new Dictionary<string, string> { ["X-Error-Code"] = "RepoNotFound" }); return; }
            if (rest[2] == "preupload")
            {
                var files = new JsonArray(r.Json["files"]!.AsArray().Select(f => (JsonNode?)new JsonObject
                {
                    ["path"] = f!["path"]!.DeepClone(), ["uploadMode"] = f["size"]!.GetValue<long>() > LfsThreshold ? "lfs" : "regular", ["shouldIgnore"] = false,
                }).ToArray());
                ReplyJson(ctx, new JsonObject { ["files"] = files });
                return;
            }
            if (rest[2] == "commit")
            {
                if (r.Header("content-type")?.StartsWith("application/x-ndjson") != true) { Reply(ctx, 400, "commit must be ndjson"); return; }
                var lines = r.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
                if (lines[0]["key"]?.GetValue<string>() != "header") { Reply(ctx, 400, "first line must be the header"); return; }
                var paths = new List<string>();
                var updates = new Dictionary<string, byte[]>();
                foreach (var line in lines.Skip(1))
                {
                    var value = line["value"]!;
                    string path = value["path"]!.GetValue<string>();
                    switch (line["key"]!.GetValue<string>())
                    {
                        case "file":
                            updates[path] = Convert.FromBase64String(value["content"]!.GetValue<string>());
                            break;
                        case "lfsFile":
                            string oid = value["oid"]!.GetValue<string>();
                            if (!_lfs.TryGetValue(oid, out var bytes) || bytes.Length != value["size"]!.GetValue<long>())
                            { Reply(ctx, 400, $"LFS object {oid} was not uploaded"); return; }
                            updates[path] = bytes;
                            break;
                        default:
                            Reply(ctx, 400, "unexpected operation"); return;
                    }
                    paths.Add(path);
                }
                lock (repo)
                {
                    foreach (var (path, bytes) in updates) repo.Files[path] = bytes;
                    repo.Commits.Add((lines[0]["value"]!["summary"]!.GetValue<string>(), paths));
                }
                ReplyJson(ctx, new JsonObject { ["commitOid"] = Convert.ToHexStringLower(SHA1.HashData(r.Body)), ["commitUrl"] = $"{Url}/{id}/commit" });
                return;
            }
        }
        if (r.Method == "POST" && p.EndsWith(".git/info/lfs/objects/batch"))
        {
            if (r.Header("accept") != "application/vnd.git-lfs+json") { Reply(ctx, 406, "accept header"); return; }
            string id = p[1..^".git/info/lfs/objects/batch".Length];
            var objects = new JsonArray();
            foreach (var o in r.Json["objects"]!.AsArray())
            {
                string oid = o!["oid"]!.GetValue<string>();
                long size = o["size"]!.GetValue<long>();
                var entry = new JsonObject { ["oid"] = oid, ["size"] = size };
                if (!_lfs.ContainsKey(oid))
                {
                    var upload = new JsonObject { ["href"] = $"{StorageUrl}/lfs-storage/{oid}" };
                    if (size > MultipartThreshold)
                    {
                        var header = new JsonObject { ["chunk_size"] = ChunkSize.ToString() };
                        for (int i = 1; i <= (size + ChunkSize - 1) / ChunkSize; i++) header[i.ToString("D5")] = $"{StorageUrl}/lfs-storage/{oid}/part/{i}";
                        upload = new JsonObject { ["href"] = $"{Url}/lfs-complete/{oid}", ["header"] = header };
                    }
                    entry["actions"] = new JsonObject { ["upload"] = upload, ["verify"] = new JsonObject { ["href"] = $"{Url}/{id}.git/info/lfs/objects/verify" } };
                }
                objects.Add(entry);
            }
            ReplyJson(ctx, new JsonObject { ["transfer"] = "basic", ["objects"] = objects });
            return;
        }
        if (r.Method == "POST" && p.EndsWith(".git/info/lfs/objects/verify"))
        {
            var body = r.Json;
            bool ok = _lfs.TryGetValue(body["oid"]!.GetValue<string>(), out var bytes) && bytes.Length == body["size"]!.GetValue<long>();
            Reply(ctx, ok ? 200 : 404, ok ? "" : "not uploaded");
            return;
        }
        var resolve = p.IndexOf("/resolve/main/", StringComparison.Ordinal);
        if (r.Method == "GET" && resolve > 0)
        {
            string id = p[1..resolve], path = p[(resolve + "/resolve/main/".Length)..];
            if (Repos.TryGetValue(id, out var repo) && repo.Files.TryGetValue(path, out var bytes)) Reply(ctx, 200, bytes);
            else Reply(ctx, 404, [], headers: new Dictionary<string, string> { ["X-Error-Code"] = "EntryNotFound" });
            return;
        }
        Reply(ctx, 404, "not found");
    }
}
