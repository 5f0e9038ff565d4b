using System.Collections.Concurrent;
using System.Net.Http.Headers;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// How long network and pipe reads may wait: for a connection (and the response headers), and for the
/// next bytes of a body or a command's output (a stall). Nothing waits forever, and a whole transfer
/// has no time limit of its own: a large file on a slow line is fine as long as bytes keep coming.
/// </summary>
public sealed record IoTimeouts(TimeSpan Connect, TimeSpan Stall, int Retries = 3)
{
    public static IoTimeouts Default { get; } = new(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(120));
}

/// <summary>A URL as it may be shown: without user info or query string, where presigned URLs and tokens live.</summary>
public static class SafeUrl
{
    public static string Redact(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.UserInfo.Length > 0 || uri.Query.Length > 0)
            ? $"{uri.Scheme}://{uri.Host}{(uri.IsDefaultPort ? "" : $":{uri.Port}")}{uri.AbsolutePath}{(uri.Query.Length > 0 ? "?…" : "")}"
            : url;
}

/// <summary>A server or the network failed (after retries): the environment, not the input.</summary>
public sealed class NetworkException(string message) : IOException(message);

/// <summary>
/// GETs over http(s) for shards, embeddings, checkpoints and weight files: connect timeout, retries
/// with backoff on network errors, timeouts and 5xx (not on 4xx), a stall timeout on every read, and a
/// body that picks up where it stopped (HTTP Range) when the connection drops mid-file. Errors name the URL.
/// </summary>
public static class HttpStreams
{
    private static readonly ConcurrentDictionary<TimeSpan, HttpClient> Clients = new();

    private static HttpClient Client(TimeSpan connect) => Clients.GetOrAdd(connect, c =>
        new HttpClient(new SocketsHttpHandler { ConnectTimeout = c, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
            { Timeout = Timeout.InfiniteTimeSpan });

    /// <summary>Opens <paramref name="url"/> for reading; the stream's Length is the announced size when the server gave one.</summary>
    public static Stream Open(string url, IoTimeouts? timeouts = null, IReadOnlyDictionary<string, string>? headers = null)
    {
        timeouts ??= IoTimeouts.Default;
        var response = Send(url, timeouts, headers, offset: 0);
        return new ResumingStream(url, timeouts, headers, response);
    }

    private static HttpResponseMessage Send(string url, IoTimeouts timeouts, IReadOnlyDictionary<string, string>? headers, long offset)
    {
        for (int attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (headers is not null) foreach (var (k, v) in headers) request.Headers.TryAddWithoutValidation(k, v);
            if (offset > 0) request.Headers.Range = new RangeHeaderValue(offset, null);
            using var cancel = new CancellationTokenSource(timeouts.Connect + timeouts.Stall);
            string failure;
            try
            {
                var response = Client(timeouts.Connect).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token)
                    .GetAwaiter().GetResult();
                int code = (int)response.StatusCode;
                if (response.IsSuccessStatusCode && (offset == 0 || code == 206)) return response;
                response.Dispose();
                if (offset > 0 && code < 300)
                    throw new NetworkException($"reading {SafeUrl.Redact(url)} stopped at byte {offset} " +
                                               "and the server cannot resume it (no Range support)");
                // A client error (404, 403, …) will not get better.
                failure = $"HTTP {code} {response.ReasonPhrase}";
                if (code < 500) throw new IOException($"{failure} for {SafeUrl.Redact(url)}");
            }
            catch (HttpRequestException e) { failure = e.Message; }
            catch (OperationCanceledException) { failure = $"no response within {(timeouts.Connect + timeouts.Stall).TotalSeconds:0} s"; }
            if (attempt > timeouts.Retries) throw new NetworkException($"GET {SafeUrl.Redact(url)} failed after {attempt} attempts: {failure}");
            Thread.Sleep(TimeSpan.FromMilliseconds(250 * Math.Pow(2, attempt - 1)));
        }
    }

    /// <summary>A response body read with a stall timeout per read, reopened at its offset when the connection fails.</summary>
    private sealed class ResumingStream : ForwardOnlyStream
    {
        private readonly string _url;
        private readonly IoTimeouts _timeouts;
        private readonly IReadOnlyDictionary<string, string>? _headers;
        private readonly long? _length;
        private HttpResponseMessage _response;
        private Stream _body;
        private long _position;
        private int _resumes;

        public ResumingStream(string url, IoTimeouts timeouts, IReadOnlyDictionary<string, string>? headers, HttpResponseMessage response)
        {
            (_url, _timeouts, _headers, _response) = (url, timeouts, headers, response);
            _length = response.Content.Headers.ContentLength;
            _body = response.Content.ReadAsStream();
        }

        public long? AnnouncedLength => _length;

        public override int Read(byte[] buffer, int offset, int count)
        {
            while (true)
            {
                string failure;
                try
                {
                    var read = _body.ReadAsync(buffer, offset, count);
                    if (!read.Wait(_timeouts.Stall))
                    {
                        _response.Dispose();   // aborts the connection; the pending read completes with an error
                        failure = $"no data for {_timeouts.Stall.TotalSeconds:0} s (stalled)";
                    }
                    else
                    {
                        int n = read.Result;
                        _position += n;
                        if (n == 0 && _length is { } length && _position < length)
                            failure = $"the connection closed at byte {_position} of {length}";
                        else
                        {
                            if (n > 0) _resumes = 0;   // retries count failures in a row, not over a whole large file
                            return n;
                        }
                    }
                }
                catch (AggregateException e) when (e.InnerException is IOException or HttpRequestException) { failure = e.InnerException!.Message; }
                catch (Exception e) when (e is IOException or HttpRequestException) { failure = e.Message; }
                if (++_resumes > _timeouts.Retries) throw new NetworkException($"reading {SafeUrl.Redact(_url)} at byte {_position}: {failure}");
                _response.Dispose();
                _response = Send(_url, _timeouts, _headers, _position);
                _body = _response.Content.ReadAsStream();
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _response.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>
    /// Streams <paramref name="url"/> to <paramref name="target"/> atomically with progress lines; checks the
    /// announced size and, when given, that the file's sha256 starts with <paramref name="sha256Prefix"/>
    /// (a file that does not is deleted and named in the error). No whole-transfer time limit.
    /// </summary>
    public static void Download(string url, string target, Action<string>? progress, IoTimeouts? timeouts = null, string? sha256Prefix = null,
                                IReadOnlyDictionary<string, string>? headers = null)
    {
        using var source = (ResumingStream)Open(url, timeouts, headers);
        CopyChecked(source, url, target, progress, sha256Prefix, source.AnnouncedLength);
    }

    /// <summary>Writes <paramref name="source"/> to <paramref name="target"/> atomically with progress, size and sha256 checks.</summary>
    internal static void CopyChecked(Stream source, string url, string target, Action<string>? progress, string? sha256Prefix, long? expected)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        long written = 0;
        int lastDecile = -1;
        AtomicFile.Write(target, s =>
        {
            var buffer = new byte[1 << 20];
            int n;
            while ((n = source.Read(buffer, 0, buffer.Length)) > 0)
            {
                s.Write(buffer, 0, n);
                sha.AppendData(buffer, 0, n);
                written += n;
                int decile = expected is > 0 ? (int)(written * 10 / expected.Value) : (int)(written >> 26);
                if (decile > lastDecile)
                {
                    lastDecile = decile;
                    progress?.Invoke($"downloaded {written / 1048576.0:F1} MB{(expected is > 0 ? $" of {expected.Value / 1048576.0:F1} MB" : "")} " +
                                     $"of {Path.GetFileName(target)}");
                }
            }
            if (expected is { } size && written != size)
                throw new IOException($"{SafeUrl.Redact(url)}: got {written} bytes, the server announced {size}");
            if (sha256Prefix is not null)
            {
                string hash = Convert.ToHexStringLower(sha.GetHashAndReset());
                if (!hash.StartsWith(sha256Prefix, StringComparison.Ordinal))
                    throw new InvalidDataException($"{SafeUrl.Redact(url)}: sha256 {hash} does not start with {sha256Prefix} (as its name says): " +
                                                   "damaged or not the published file; not kept");
            }
        });
    }
}
