using System.Collections;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Training;

/// <summary>
/// Data-parallel training on Open MPI: real `mpirun -np 2` launches of the built CLI on loopback (Open MPI installed by
/// .ci/run; running as root and oversubscribing the 2 cores allowed by flags here only).
/// </summary>
[Collection("Services")]
public class DataParallelTests
{
    public static string? MpiRun => new[] { "/usr/bin/mpirun", "/usr/local/bin/mpirun" }.FirstOrDefault(File.Exists);

    /// <summary>Runs the CLI under mpirun with <paramref name="ranks"/> ranks (one thread each), bounded in time.</summary>
    public static CliRunner.Result RunRanks(int ranks, string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo(MpiRun!) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(), "-x", "OMP_NUM_THREADS=1", "-x", "NO_COLOR=1",
                                  "dotnet", Path.Combine(AppContext.BaseDirectory, "dalle2.dll") }.Concat(args))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException("mpirun " + string.Join(' ', args)); }
        return new CliRunner.Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    [SkippableFact]
    public void TwoRanksWithBatchBTrainAsOneProcessWithBatch2BAndAgreeOnEveryWeight()
    {
        Skip.If(MpiRun is null, "Open MPI is not installed (apt-get install openmpi-bin libopenmpi3; .ci/run does it)");
        using var dir = new TestPaths.TempDir();
        var two = RunRanks(2, dir.Path, "mpi-check", "--steps", "4", "--batch", "2", "--save", dir.File("two.pth"));
        Assert.True(two.ExitCode == 0, two.Stdout + two.Stderr);
        Assert.Contains("ranks 2:", two.Stdout);
        Assert.Contains("weights identical on every rank: yes", two.Stdout);
        var one = CliRunner.Run("mpi-check", "--steps", "4", "--batch", "4", "--save", dir.File("one.pth"));
        Assert.True(one.ExitCode == 0, one.Stdout + one.Stderr);
        Assert.Contains("ranks 1:", one.Stdout);
        string Losses(string output) => output[output.IndexOf("losses", StringComparison.Ordinal)..].Trim();
        Assert.Equal(Losses(one.Stdout), Losses(two.Stdout));

        // Same weights and EMA weights within float tolerance: the gradient sums of 2 × 2 samples and of 4 samples differ
        // in summation order only (≈ 1e-7 relative per step).
        var a = (IDictionary)Dalle2Sharp.Runtime.TorchFiles.LoadStateDict(dir.File("two.pth"))["model"]!;
        var b = (IDictionary)Dalle2Sharp.Runtime.TorchFiles.LoadStateDict(dir.File("one.pth"))["model"]!;
        Assert.Equal(a.Count, b.Count);
        double worst = 0;
        foreach (DictionaryEntry e in a)
            worst = Math.Max(worst, ((Tensor)e.Value!).sub((Tensor)b[e.Key]!).abs().max().item<float>());
        Assert.True(worst < 2e-5, $"largest weight difference {worst}");
    }
}
