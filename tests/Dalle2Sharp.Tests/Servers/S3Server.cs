using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Dalle2Sharp.Tests.Servers;

/// <summary>
/// s3rver (npm, installed by .ci/run under tests/servers) on 127.0.0.1 with one bucket, until disposed:
/// a real S3-compatible server speaking the S3 REST API with signature checks. Its static credentials
/// are S3RVER / S3RVER. Tests skip with the reason when node or s3rver is not installed.
/// </summary>
public sealed class S3Server : IDisposable
{
    public const string AccessKey = "S3RVER", SecretKey = "S3RVER";
    private readonly Process _process;
    private readonly TestPaths.TempDir _data = new();

    public static string? Executable
    {
        get
        {
            var path = Path.Combine(TestPaths.RepoRoot, "tests", "servers", "node_modules", ".bin", "s3rver");
            return File.Exists(path) ? path : null;
        }
    }

    public static void SkipUnlessInstalled() =>
        Skip.If(Executable is null, "s3rver is not installed (npm install --prefix tests/servers; .ci/run does it)");

    public S3Server(string bucket = "bucket")
    {
        Bucket = bucket;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Endpoint = $"http://127.0.0.1:{port}";
        var psi = new ProcessStartInfo(Executable ?? throw new InvalidOperationException("s3rver not installed"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "-d", _data.Path, "-a", "127.0.0.1", "-p", port.ToString(), "--silent", "--no-vhost-buckets",
                                  "--configure-bucket", bucket })
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        // Bounded wait for the port to accept connections.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, port); break; }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_process.HasExited) { Thread.Sleep(100); }
        }
    }

    public string Endpoint { get; }
    public string Bucket { get; }

    /// <summary>The environment a process needs to reach this server through the standard AWS variables.</summary>
    public Dictionary<string, string> Environment => new()
    {
        ["AWS_ENDPOINT_URL"] = Endpoint, ["AWS_ACCESS_KEY_ID"] = AccessKey, ["AWS_SECRET_ACCESS_KEY"] = SecretKey, ["AWS_REGION"] = "us-east-1",
    };

    /// <summary>Sets the AWS variables in this test process (service tests run in the non-parallel "Services" collection).</summary>
    public void ApplyToProcess()
    {
        foreach (var (k, v) in Environment) System.Environment.SetEnvironmentVariable(k, v);
    }

    /// <summary>An s3cmd configuration file pointing at this server, for pipe:s3cmd URLs.</summary>
    public string WriteS3cmdConfig(string path)
    {
        string hostPort = Endpoint["http://".Length..];
        File.WriteAllText(path, $"""
            [default]
            access_key = {AccessKey}
            secret_key = {SecretKey}
            host_base = {hostPort}
            host_bucket = {hostPort}
            use_https = False
            signature_v2 = False
            bucket_location = us-east-1
            """);
        return path;
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(true); _process.WaitForExit(5000); } } catch (InvalidOperationException) { }
        _process.Dispose();
        _data.Dispose();
    }
}
