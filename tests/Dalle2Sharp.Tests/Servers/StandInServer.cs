using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tests.Servers;

/// <summary>One request as the server saw it.</summary>
public sealed record RecordedRequest(string Method, string Path, string Query, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string Text => Encoding.UTF8.GetString(Body);
    public JsonObject Json => JsonNode.Parse(Body)!.AsObject();
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;
}

/// <summary>
/// Base of the protocol stand-ins (wandb, the Hub): an HttpListener on 127.0.0.1 that records every
/// request, answers each on its own task, and injects faults on demand — 5xx answers, stalls, dropped
/// connections — for the requests a predicate picks. Stops when disposed.
/// </summary>
public abstract class StandInServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly List<(Func<RecordedRequest, bool> Match, string Kind, int Times)> _faults = [];
    private readonly CancellationTokenSource _stop = new();

    protected StandInServer()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Url = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Url + "/");
        // The same server under another host name: where the stand-ins put "storage" URLs (signed URLs live on other hosts).
        StorageUrl = $"http://localhost:{port}";
        _listener.Prefixes.Add(StorageUrl + "/");
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    /// <summary>The base URL, without a trailing slash.</summary>
    public string Url { get; }

    /// <summary>The same server as another origin (localhost instead of 127.0.0.1): its presigned storage URLs.</summary>
    public string StorageUrl { get; }

    public IReadOnlyList<RecordedRequest> Requests => _requests.ToList();

    /// <summary>The next <paramref name="times"/> matching requests fail: "500", "stall" (no answer for a minute) or "drop" (connection reset).</summary>
    public void Fault(Func<RecordedRequest, bool> match, string kind, int times = 1)
    {
        lock (_faults) _faults.Add((match, kind, times));
    }

    /// <summary>Every request fails with 503 while true (an outage).</summary>
    public volatile bool Down;

    private void Serve()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = _listener.GetContext(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(() => Answer(ctx));
        }
    }

    private void Answer(HttpListenerContext ctx)
    {
        try
        {
            using var body = new MemoryStream();
            ctx.Request.InputStream.CopyTo(body);
            var headers = ctx.Request.Headers.AllKeys.Where(k => k is not null)
                .ToDictionary(k => k!.ToLowerInvariant(), k => ctx.Request.Headers[k]!);
            var request = new RecordedRequest(ctx.Request.HttpMethod, Uri.UnescapeDataString(ctx.Request.Url!.AbsolutePath), ctx.Request.Url.Query,
                headers, body.ToArray());
            _requests.Enqueue(request);
            if (Down) { Reply(ctx, 503, "down"); return; }
            string? fault = null;
            lock (_faults)
            {
                int i = _faults.FindIndex(f => f.Times > 0 && f.Match(request));
                if (i >= 0) { fault = _faults[i].Kind; _faults[i] = _faults[i] with { Times = _faults[i].Times - 1 }; }
            }
            switch (fault)
            {
                case "500": Reply(ctx, 500, "injected failure"); return;
                case "stall": _stop.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(60)); ctx.Response.Abort(); return;
                case "drop": ctx.Response.Abort(); return;
            }
            Handle(ctx, request);
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
        catch (Exception e)
        {
            try { Reply(ctx, 500, $"stand-in error: {e}"); } catch (Exception) { }
        }
    }

    protected abstract void Handle(HttpListenerContext ctx, RecordedRequest request);

    protected static void Reply(HttpListenerContext ctx, int status, string text, string contentType = "text/plain") =>
        Reply(ctx, status, Encoding.UTF8.GetBytes(text), contentType);

    protected static void Reply(HttpListenerContext ctx, int status, byte[] body, string contentType = "application/octet-stream",
                                IReadOnlyDictionary<string, string>? headers = null)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = contentType;
        if (headers is not null) foreach (var (k, v) in headers) ctx.Response.Headers[k] = v;
        ctx.Response.ContentLength64 = body.Length;
        ctx.Response.OutputStream.Write(body);
        ctx.Response.Close();
    }

    protected static void ReplyJson(HttpListenerContext ctx, JsonNode json, int status = 200) =>
        Reply(ctx, status, Encoding.UTF8.GetBytes(json.ToJsonString()), "application/json");

    public virtual void Dispose()
    {
        _stop.Cancel();
        try { _listener.Stop(); _listener.Close(); } catch (ObjectDisposedException) { }
        try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}

/// <summary>Tests that change process-wide service variables (WANDB_*, HF_*, AWS_*) run one at a time.</summary>
[CollectionDefinition("Services", DisableParallelization = true)]
public sealed class ServicesCollection;
