using System.Diagnostics;

namespace Dalle2Sharp.Data;

/// <summary>
/// Opens a shard (or any data file) as a forward-only stream: a local path, file://, http(s)://
/// (streamed, retried on transient failures) or pipe:COMMAND (the command's stdout, as webdataset).
/// </summary>
public static class ShardStreams
{
    private static readonly HttpClient Http = new() { Timeout = Timeout.InfiniteTimeSpan };

    public static Stream Open(string url, int retries = 3)
    {
        if (url.StartsWith("pipe:", StringComparison.Ordinal)) return new PipeStream(url["pipe:".Length..]);
        if (url.StartsWith("http://", StringComparison.Ordinal) || url.StartsWith("https://", StringComparison.Ordinal))
            return OpenHttp(url, retries);
        string path = url.StartsWith("file://", StringComparison.Ordinal) ? new Uri(url).LocalPath : url;
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    private static Stream OpenHttp(string url, int retries)
    {
        for (int attempt = 1; ; attempt++)
        {
            HttpResponseMessage response;
            try
            {
                response = Http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
            }
            catch (HttpRequestException) when (attempt <= retries)
            {
                Backoff(attempt);
                continue;
            }
            // Server errors are retried; a client error (404, 403, ...) will not get better.
            if ((int)response.StatusCode >= 500 && attempt <= retries)
            {
                response.Dispose();
                Backoff(attempt);
                continue;
            }
            if (!response.IsSuccessStatusCode)
            {
                int code = (int)response.StatusCode;
                response.Dispose();
                throw new IOException($"HTTP {code} {response.ReasonPhrase} for {url}");
            }
            return response.Content.ReadAsStream();
        }
    }

    private static void Backoff(int attempt) => Thread.Sleep(TimeSpan.FromMilliseconds(200 * Math.Pow(2, attempt - 1)));

    /// <summary>A shell command's stdout; a non-zero exit surfaces as an IOException carrying its stderr.</summary>
    private sealed class PipeStream : ForwardOnlyStream
    {
        private readonly Process _process;
        private readonly Stream _stdout;
        private readonly Task<string> _stderr;
        private readonly string _command;

        public PipeStream(string command)
        {
            _command = command;
            var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(command);
            _process = Process.Start(psi) ?? throw new IOException($"cannot start pipe command: {command}");
            _stdout = _process.StandardOutput.BaseStream;
            _stderr = _process.StandardError.ReadToEndAsync();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = _stdout.Read(buffer, offset, count);
            if (n == 0) CheckExit();
            return n;
        }

        private void CheckExit()
        {
            _process.WaitForExit();
            if (_process.ExitCode != 0)
                throw new IOException($"pipe command failed (exit {_process.ExitCode}): {_command}: {_stderr.Result.Trim()}");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                if (!_process.HasExited) { try { _process.Kill(true); } catch (InvalidOperationException) { } }
                _process.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
