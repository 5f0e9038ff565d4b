using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tracking;

/// <summary>
/// HTTP calls to a tracking service (wandb, the Hub) and the storage URLs it hands out: connect and
/// response timeouts, retries with backoff on network errors, timeouts, 429 and 5xx (not on refusals),
/// no automatic redirects (credentials must not follow a redirect to another host), and failures as
/// <see cref="DeliveryException"/> naming the service and URL — never a header or token.
/// </summary>
public sealed class ServiceHttp(string service, IoTimeouts timeouts)
{
    /// <summary>The largest reply read into memory: API answers are kilobytes; a larger one is an error, not an allocation.</summary>
    public const long MaxReplyBytes = 16L << 20;

    private static HttpClient NewClient(TimeSpan connect) =>
        new(new SocketsHttpHandler { AllowAutoRedirect = false, ConnectTimeout = connect, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            { Timeout = Timeout.InfiniteTimeSpan, MaxResponseContentBufferSize = MaxReplyBytes };

    private static readonly Lazy<HttpClient> Shared = new(() => NewClient(IoTimeouts.Default.Connect));

    private HttpClient Client { get; } = timeouts.Connect == IoTimeouts.Default.Connect ? Shared.Value : NewClient(timeouts.Connect);

    public string Service { get; } = service;
    public IoTimeouts Timeouts { get; } = timeouts;

    /// <summary>Transfer rate assumed when a body's size sets the request's time limit (slow links are fine; stalls are not).</summary>
    private const double MinBytesPerSecond = 256 * 1024;

    /// <summary>
    /// Sends the request <paramref name="make"/> builds (once per attempt, so bodies are fresh) and returns a
    /// successful response; <paramref name="retry"/> false for calls that must not repeat (a Hub commit).
    /// </summary>
    public HttpResponseMessage Send(Func<HttpRequestMessage> make, string what, long bodyBytes = 0, bool retry = true,
                                    Func<HttpStatusCode, bool>? acceptable = null)
    {
        var limit = Timeouts.Connect + Timeouts.Stall + TimeSpan.FromSeconds(bodyBytes / MinBytesPerSecond);
        for (int attempt = 1; ; attempt++)
        {
            using var request = make();
            string url = SafeUrl.Redact(request.RequestUri!.ToString());
            string failure;
            bool retryable = true;
            TimeSpan? retryAfter = null;
            using (var cancel = new CancellationTokenSource(limit))
            {
                try
                {
                    var response = Client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancel.Token).GetAwaiter().GetResult();
                    int code = (int)response.StatusCode;
                    if (response.IsSuccessStatusCode || acceptable?.Invoke(response.StatusCode) == true) return response;
                    failure = $"HTTP {code} {response.ReasonPhrase}{Detail(response)}";
                    retryable = code is 408 or 429 || code >= 500 && code != 501;
                    retryAfter = response.Headers.RetryAfter?.Delta;
                    response.Dispose();
                }
                catch (HttpRequestException e) { failure = e.Message; }
                catch (OperationCanceledException) { failure = $"no answer within {limit.TotalSeconds:0} s"; }
                catch (IOException e) { failure = e.Message; }
            }
            if (!retryable || !retry || attempt > Timeouts.Retries)
                throw new DeliveryException($"{Service}: {what} ({request.Method} {url}) " +
                    $"failed{(attempt > 1 ? $" after {attempt} attempts" : "")}: {failure}",
                    retryable);
            var wait = retryAfter ?? TimeSpan.FromMilliseconds(500 * Math.Pow(2, attempt - 1));
            Thread.Sleep(wait < TimeSpan.FromSeconds(30) ? wait : TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>What a service said about a failure: its error headers or the start of its body.</summary>
    private static string Detail(HttpResponseMessage response)
    {
        var parts = new List<string>();
        if (response.Headers.TryGetValues("X-Error-Code", out var code)) parts.Add(string.Join(",", code));
        if (response.Headers.TryGetValues("X-Error-Message", out var message)) parts.Add(string.Join(",", message));
        if (parts.Count == 0)
        {
            string body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult().Trim();
            if (body.Length > 0) parts.Add(body.Length > 300 ? body[..300] + "…" : body);
        }
        return parts.Count > 0 ? ": " + string.Join(": ", parts) : "";
    }

    public static JsonObject ReadJson(HttpResponseMessage response, string what)
    {
        string text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        try { return JsonNode.Parse(text) as JsonObject ?? throw new DeliveryException($"{what}: the answer is not a JSON object",
            retryable: false); }
        catch (System.Text.Json.JsonException e) { throw new DeliveryException($"{what}: the answer is not JSON ({e.Message})", retryable: false,
            e); }
    }

    public static StringContent Json(JsonNode body, string mediaType = "application/json") =>
        new(body.ToJsonString(), Encoding.UTF8, mediaType);
}
