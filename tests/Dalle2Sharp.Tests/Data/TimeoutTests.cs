using System.Net;
using System.Net.Sockets;
using System.Text;
using Dalle2Sharp.Data;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tests.Data;

/// <summary>Network and pipe reads never wait forever: they time out, retry or resume, and name what they waited for.</summary>
public class TimeoutTests
{
    private static readonly IoTimeouts Short = new(TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(0.5), Retries: 1);

    /// <summary>For servers that do answer: room for a thread pool busy with parallel tests, still well under the 8 s stalls.</summary>
    private static readonly IoTimeouts Answering = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1.5), Retries: 1);

    /// <summary>
    /// A loopback HTTP server for misbehaviour: each connection gets the next behaviour from the list
    /// (the last one repeats). At most 10 connections, each served for at most 10 s; stopped on dispose.
    /// </summary>
    private sealed class MisbehavingServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        public int Connections;
        public readonly List<string> Requests = [];

        public MisbehavingServer(params Func<NetworkStream, string, Task>[] behaviours)
        {
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                for (int i = 0; i < 10 && !_stop.IsCancellationRequested; i++)
                {
                    TcpClient client;
                    try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                    catch (OperationCanceledException) { return; }
                    int n = Interlocked.Increment(ref Connections);
                    var behaviour = behaviours[Math.Min(n - 1, behaviours.Length - 1)];
                    _ = Task.Run(async () =>
                    {
                        using (client)
                        {
                            var stream = client.GetStream();
                            var request = await ReadRequest(stream);
                            lock (Requests) Requests.Add(request);
                            try { await behaviour(stream, request).WaitAsync(TimeSpan.FromSeconds(10), _stop.Token); }
                            catch (Exception) { }
                        }
                    });
                }
            });
        }

        public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/file.bin";

        private static async Task<string> ReadRequest(NetworkStream stream)
        {
            var buffer = new byte[4096];
            var text = new StringBuilder();
            while (!text.ToString().Contains("\r\n\r\n"))
            {
                int n = await stream.ReadAsync(buffer);
                if (n == 0) break;
                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
            return text.ToString();
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        }
    }

    private static readonly byte[] Body = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray();

    private static async Task Respond(NetworkStream s, int status, byte[] body, long? start = null, bool rangeSupport = true, int stopAfter = int.MaxValue)
    {
        string head = $"HTTP/1.1 {status} {(status == 206 ? "Partial Content" : "OK")}\r\nContent-Length: {body.Length}\r\n" +
                      (rangeSupport ? "Accept-Ranges: bytes\r\n" : "") + (start is { } st ? $"Content-Range: bytes {st}-{st + body.Length - 1}/{Body.Length}\r\n" : "") +
                      "Connection: close\r\n\r\n";
        await s.WriteAsync(Encoding.ASCII.GetBytes(head));
        await s.WriteAsync(body.AsMemory(0, Math.Min(stopAfter, body.Length)));
        await s.FlushAsync();
        if (stopAfter < body.Length) await Task.Delay(TimeSpan.FromSeconds(8));   // stall mid-body
    }

    [Fact]
    public void AServerThatNeverAnswersIsAnErrorNamingTheUrl()
    {
        using var server = new MisbehavingServer((_, _) => Task.Delay(TimeSpan.FromSeconds(8)));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<NetworkException>(() => HttpStreams.Open(server.Url, Short).Dispose());
        Assert.Contains(server.Url, e.Message);
        Assert.Contains("no response within", e.Message);
        Assert.Contains("after 2 attempts", e.Message);               // one retry
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public void AStallMidBodyResumesWithARangeRequest()
    {
        using var server = new MisbehavingServer(
            (s, _) => Respond(s, 200, Body, stopAfter: 2000),
            (s, request) =>
            {
                var range = request.Split("\r\n").First(l => l.StartsWith("Range:", StringComparison.OrdinalIgnoreCase));
                long from = long.Parse(range.Split('=')[1].TrimEnd('-'));
                return Respond(s, 206, Body[(int)from..], start: from);
            });
        using var stream = HttpStreams.Open(server.Url, Answering);
        var copy = new MemoryStream();
        stream.CopyTo(copy);
        Assert.Equal(Body, copy.ToArray());
        Assert.Contains(server.Requests, r => r.Contains("Range: bytes=2000-"));
    }

    [Fact]
    public void AStallWithoutResumeSupportIsAnErrorNamingTheUrl()
    {
        using var server = new MisbehavingServer((s, _) => Respond(s, 200, Body, rangeSupport: false, stopAfter: 1000));
        using var stream = HttpStreams.Open(server.Url, Answering);
        var e = Assert.Throws<NetworkException>(() => stream.CopyTo(Stream.Null));
        Assert.Contains(server.Url, e.Message);
        Assert.Contains("at byte 1000", e.Message);
    }

    [Fact]
    public void ASilentPipeCommandIsReportedAndStopped()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var stream = Dalle2Sharp.Runtime.Storage.OpenRead("pipe:sleep 30", Short);
        var e = Assert.Throws<IOException>(() => stream.ReadByte());
        Assert.Contains("produced nothing for", e.Message);
        Assert.Contains("sleep 30", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }
}
