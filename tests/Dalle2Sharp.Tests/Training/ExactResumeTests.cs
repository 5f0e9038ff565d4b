using System.Collections;
using System.Diagnostics;
using Dalle2Sharp.Data;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Training;

public class ExactResumeTests
{
    /// <summary>The small resume-test run (shared with the data-parallel tests, which add evaluation and use one worker).</summary>
    internal static string Config(string root, string run, int workers = 2, string evaluate = "{}") => $$"""
    {
      "seed": 5,
      "decoder": {
        "unets": [{ "dim": 8, "image_embed_dim": 32, "cond_dim": 8, "dim_mults": [1, 2], "attn_dim_head": 8, "attn_heads": 2, "resnet_groups": 4, "num_resnet_blocks": 1 }],
        "image_sizes": [16], "timesteps": 50
      },
      "data": {
        "webdataset_base_url": "{{root}}/shards/{}.tar", "img_embeddings_url": "{{root}}/shards/img_emb",
        "num_workers": {{workers}}, "batch_size": 4, "start_shard": 0, "end_shard": 4, "shard_width": 5,
        "splits": { "train": 0.6, "val": 0.2, "test": 0.2 }, "preprocessing": { "ToTensor": true }
      },
      "train": { "epochs": 1, "lr": 1e-3, "validation_samples": 8, "n_sample_images": 0, "device": "cpu", "save_every_n_samples": 120, "ema_beta": 0.99 },
      "evaluate": {{evaluate}},
      "tracker": { "data_path": "{{root}}/{{run}}", "log": { "log_type": "console", "auto_resume": true }, "save": { "save_to": "local", "save_latest_to": "{{root}}/{{run}}-latest.pth" } }
    }
    """;

    private static Process Start(string configPath)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dalle2.dll"));
        foreach (var a in new[] { "train-decoder", "--config", configPath }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    [Fact]
    public void KilledAndResumedRunEqualsStraightRunBitForBit()
    {
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(dir.File("shards"), shards: 5, perShard: 80, size: 16);   // 240 train samples = 60 steps
        File.WriteAllText(dir.File("straight.json"), Config(dir.Path, "straight"));
        File.WriteAllText(dir.File("killed.json"), Config(dir.Path, "killed"));
        File.WriteAllText(dir.File("interrupted.json"), Config(dir.Path, "interrupted"));

        using (var straight = Start(dir.File("straight.json")))
        {
            Assert.True(straight.WaitForExit(TimeSpan.FromMinutes(3)));
            Assert.Equal(0, straight.ExitCode);
        }

        // Kill -9 as soon as the mid-epoch checkpoint (120 samples) is recorded.
        using (var killed = Start(dir.File("killed.json")))
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!File.Exists(dir.File("killed/run.json")) && !killed.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Assert.False(killed.HasExited, "the run finished before it could be killed");
            killed.Kill(entireProcessTree: true);
            killed.WaitForExit();
        }
        var midway = PyTorchUnpickler.UnpickleStateDict(dir.File("killed/checkpoint.pth"));
        Assert.Equal(120L, Convert.ToInt64(midway["sample"]));

        using (var resumed = Start(dir.File("killed.json")))
        {
            Assert.True(resumed.WaitForExit(TimeSpan.FromMinutes(3)));
            Assert.Equal(0, resumed.ExitCode);
        }

        // Ctrl-C (SIGINT) once training has logged its first step: the step finishes, a mid-epoch checkpoint
        // is written, exit 130; the same command then resumes exactly.
        using (var interrupted = Start(dir.File("interrupted.json")))
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!(File.Exists(dir.File("interrupted/metrics.jsonl")) && File.ReadAllText(dir.File("interrupted/metrics.jsonl")).Contains("Training Loss"))
                   && !interrupted.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Assert.False(interrupted.HasExited, "the run finished before it could be interrupted");
            using (var kill = Process.Start("kill", ["-INT", interrupted.Id.ToString()])) kill.WaitForExit();
            Assert.True(interrupted.WaitForExit(TimeSpan.FromMinutes(1)), "no exit within a minute of SIGINT");
            Assert.Equal(130, interrupted.ExitCode);
        }
        var saved = PyTorchUnpickler.UnpickleStateDict(dir.File("interrupted/checkpoint.pth"));
        Assert.InRange(Convert.ToInt64(saved["sample"]), 4L, 236L);
        using (var resumed = Start(dir.File("interrupted.json")))
        {
            Assert.True(resumed.WaitForExit(TimeSpan.FromMinutes(3)));
            Assert.Equal(0, resumed.ExitCode);
        }

        var a = PyTorchUnpickler.UnpickleStateDict(dir.File("straight/checkpoint.pth"));
        foreach (var run in new[] { "killed", "interrupted" })
            AssertSameTraining(a, PyTorchUnpickler.UnpickleStateDict(dir.File($"{run}/checkpoint.pth")), run);
    }

    private static void AssertSameTraining(Hashtable a, Hashtable b, string run)
    {
        Assert.Equal(((Tensor)a["steps"]!).data<long>().ToArray(), ((Tensor)b["steps"]!).data<long>().ToArray());
        foreach (var entry in new[] { "model", "ema" })
        {
            var ma = (IDictionary)a[entry]!;
            var mb = (IDictionary)b[entry]!;
            foreach (DictionaryEntry e in ma)
                Assert.True(((Tensor)e.Value!).equal((Tensor)mb[e.Key]!).all().item<bool>(), $"{run} {entry}: {e.Key} differs");
        }
    }
}
