using System.Diagnostics;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// A pipe:COMMAND source (as webdataset): the shell command's stdout; a command silent for the stall
/// timeout is stopped, and a non-zero exit surfaces as an IOException carrying its stderr.
/// </summary>
internal sealed class PipeStream : ForwardOnlyStream
{
    private readonly Process _process;
    private readonly Stream _stdout;
    private readonly Task<string> _stderr;
    private readonly string _command;
    private readonly TimeSpan _stall;

    public PipeStream(string command, TimeSpan stall)
    {
        (_command, _stall) = (command, stall);
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        _process = Process.Start(psi) ?? throw new IOException($"cannot start pipe command: {command}");
        _stdout = _process.StandardOutput.BaseStream;
        _stderr = _process.StandardError.ReadToEndAsync();
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var read = _stdout.ReadAsync(buffer, offset, count);
        if (!read.Wait(_stall))
        {
            try { _process.Kill(true); } catch (InvalidOperationException) { }
            throw new IOException($"pipe command produced nothing for {_stall.TotalSeconds:0} s (stopped): {_command}");
        }
        int n = read.Result;
        if (n == 0) CheckExit();
        return n;
    }

    private void CheckExit()
    {
        if (!_process.WaitForExit(_stall))
        {
            try { _process.Kill(true); } catch (InvalidOperationException) { }
            throw new IOException($"pipe command closed its output but did not exit within {_stall.TotalSeconds:0} s: {_command}");
        }
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
