using System.Collections;
using System.Diagnostics;
using Dalle2Sharp.Data;
using Dalle2Sharp.Tests.Evaluation;
using TorchSharp.PyBridge;
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

    private static ProcessStartInfo Launch(int ranks, string workingDirectory, string? marker, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(MpiRun!) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        var launcher = new List<string> { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(), "-x", "OMP_NUM_THREADS=1", "-x", "NO_COLOR=1" };
        if (marker is not null) launcher.AddRange(["-x", $"DALLE2_TEST_MARKER={marker}"]);
        foreach (var a in launcher.Concat(["dotnet", Path.Combine(AppContext.BaseDirectory, "dalle2.dll")]).Concat(args)) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>Runs the CLI under mpirun with <paramref name="ranks"/> ranks (one thread each), bounded in time.</summary>
    public static CliRunner.Result RunRanks(int ranks, string workingDirectory, params string[] args)
    {
        using var p = Process.Start(Launch(ranks, workingDirectory, null, args))!;
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
        Assert.Contains("uneven all-gather ok", two.Stdout);
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

    /// <summary>ExactResumeTests' run with evaluation (FID and LPIPS over both ranks' images) and one data worker.</summary>
    private static string Config(string root, string run) => ExactResumeTests.Config(root, run, workers: 1, evaluate:
        $$"""{ "n_evaluation_samples": 4, "weights_dir": "{{root}}/weights", "FID": { "feature": 64 }, "LPIPS": { "net_type": "vgg" } }""");

    /// <summary>The PID of the process that mpirun started as <paramref name="rank"/> for the launch marked <paramref name="marker"/>.</summary>
    private static int? RankPid(string marker, int rank)
    {
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            string environ;
            try { environ = File.ReadAllText(Path.Combine(dir, "environ")); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            var vars = environ.Split('\0');
            if (vars.Contains($"DALLE2_TEST_MARKER={marker}") && vars.Contains($"OMPI_COMM_WORLD_RANK={rank}")) return pid;
        }
        return null;
    }

    [SkippableFact]
    public void ARankKilledStopsTheRunAndTheCheckpointResumesExactlyWithTheSameRanksAndWithOne()
    {
        Skip.If(MpiRun is null, "Open MPI is not installed (apt-get install openmpi-bin libopenmpi3; .ci/run does it)");
        using var dir = new TestPaths.TempDir();
        // 5 shards: each of 2 ranks takes 2 (1 train, 1 val): 80 training samples per rank, 8 per step together, a
        // mid-epoch checkpoint at 120 samples.
        SyntheticShapes.WriteDataset(dir.File("shards"), shards: 5, perShard: 80, size: 16);
        MetricWeightFiles.WriteRandom(dir.File("weights"), "vgg");   // evaluation: each rank generates 2 of the 4 images
        // The same data with 5 unreadable images in each of rank 1's shards (2 and 3): it skips them with warnings and has
        // fewer batches than rank 0, so the epoch ends for both at its last batch — no rank waits at a collective.
        Directory.CreateDirectory(dir.File("bad"));
        SyntheticShapes.WriteDataset(dir.File("bad/shards"), shards: 5, perShard: 80, size: 16);
        foreach (var shard in new[] { 2, 3 }) CorruptImages(dir.File($"bad/shards/{shard:D5}.tar"), count: 5);
        MetricWeightFiles.WriteRandom(dir.File("bad/weights"), "vgg");
        File.WriteAllText(dir.File("bad.json"), Config(dir.File("bad"), "run"));
        var bad = RunRanks(2, dir.Path, "train-decoder", "--config", dir.File("bad.json"));
        Assert.True(bad.ExitCode == 0, bad.Stdout + bad.Stderr);
        Assert.Contains("[rank 1] warning: corrupt image", bad.Stderr);
        foreach (var run in new[] { "straight", "killed" }) File.WriteAllText(dir.File($"{run}.json"), Config(dir.Path, run));

        var straight = RunRanks(2, dir.Path, "train-decoder", "--config", dir.File("straight.json"));
        Assert.True(straight.ExitCode == 0, straight.Stdout + straight.Stderr);
        Assert.Contains("2 ranks (MPI)", straight.Stdout);
        Assert.Contains("FID: ", straight.Stdout);
        Assert.Contains("LPIPS: ", straight.Stdout);

        // SIGKILL rank 1 once the mid-epoch checkpoint is recorded: mpirun stops rank 0 and exits, in bounded time.
        string marker = Guid.NewGuid().ToString("N");
        using (var killed = Process.Start(Launch(2, dir.Path, marker, ["train-decoder", "--config", dir.File("killed.json")]))!)
        {
            var output = killed.StandardOutput.ReadToEndAsync();
            var errors = killed.StandardError.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!File.Exists(dir.File("killed/run.json")) && !killed.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Assert.False(killed.HasExited, "the run finished before a rank could be killed");
            int pid = RankPid(marker, 1) ?? throw new InvalidOperationException("rank 1's process was not found");
            using (var kill = Process.Start("kill", ["-KILL", pid.ToString()])) kill.WaitForExit();
            var clock = Stopwatch.StartNew();
            Assert.True(killed.WaitForExit(TimeSpan.FromSeconds(60)), "the other rank did not stop within 60 s of rank 1's death");
            Assert.NotEqual(0, killed.ExitCode);
            Assert.Contains("signal 9", output.Result + errors.Result);
        }
        var midway = PyTorchUnpickler.UnpickleStateDict(dir.File("killed/checkpoint.pth"));
        Assert.Equal(120L, Convert.ToInt64(midway["sample"]));
        Assert.Equal(2, ((IList)midway["rng_states"]!).Count);

        // Another number of ranks resumes from the same checkpoint (a copy of the project: run.json names it relative to data_path).
        CopyDirectory(dir.File("killed"), dir.File("one-rank"));
        File.WriteAllText(dir.File("one-rank.json"), Config(dir.Path, "one-rank"));
        var one = CliRunner.Run("train-decoder", "--config", dir.File("one-rank.json"));
        Assert.True(one.ExitCode == 0, one.Stdout + one.Stderr);
        Assert.Contains("resumed from", one.Stdout);

        // The same number of ranks resumes exactly: the same weights, EMA weights and steps as the run left alone.
        var resumed = RunRanks(2, dir.Path, "train-decoder", "--config", dir.File("killed.json"));
        Assert.True(resumed.ExitCode == 0, resumed.Stdout + resumed.Stderr);
        var a = PyTorchUnpickler.UnpickleStateDict(dir.File("straight/checkpoint.pth"));
        var b = PyTorchUnpickler.UnpickleStateDict(dir.File("killed/checkpoint.pth"));
        Assert.Equal(((Tensor)a["steps"]!).data<long>().ToArray(), ((Tensor)b["steps"]!).data<long>().ToArray());
        foreach (var entry in new[] { "model", "ema" })
            foreach (DictionaryEntry e in (IDictionary)a[entry]!)
                Assert.True(((Tensor)e.Value!).equal((Tensor)((IDictionary)b[entry]!)[e.Key]!).all().item<bool>(), $"{entry}: {e.Key} differs");
    }

    /// <summary>Replaces the first <paramref name="count"/> PNGs of a shard with bytes that are no image.</summary>
    private static void CorruptImages(string tar, int count)
    {
        var entries = new List<(string Name, byte[] Data)>();
        using (var reader = new System.Formats.Tar.TarReader(File.OpenRead(tar)))
            while (reader.GetNextEntry() is { } entry)
            {
                using var data = new MemoryStream();
                entry.DataStream?.CopyTo(data);
                entries.Add((entry.Name, data.ToArray()));
            }
        int corrupted = 0;
        using var stream = File.Create(tar);
        using var writer = new System.Formats.Tar.TarWriter(stream, System.Formats.Tar.TarEntryFormat.Ustar);
        foreach (var (name, data) in entries)
        {
            bool corrupt = name.EndsWith(".png", StringComparison.Ordinal) && corrupted++ < count;
            var bytes = corrupt ? System.Text.Encoding.ASCII.GetBytes("not an image") : data;
            writer.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) });
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to));
    }
}
