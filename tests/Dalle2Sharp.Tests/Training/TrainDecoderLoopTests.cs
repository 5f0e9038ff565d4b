using Dalle2Sharp.Tests.Servers;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Training;

namespace Dalle2Sharp.Tests.Training;

public class TrainDecoderLoopTests
{
    private static TrainDecoderConfig TinyRun(string root, int epochs = 2, bool autoResume = false, string? extraLog = null)
    {
        var json = $$"""
        {
          "seed": 3,
          "decoder": {
            "unets": [{ "dim": 8, "image_embed_dim": 32, "cond_dim": 8, "dim_mults": [1, 2], "attn_dim_head": 8, "attn_heads": 2, "resnet_groups": 4, "num_resnet_blocks": 1 }],
            "image_sizes": [16], "timesteps": 20, "sample_timesteps": 2, "sampler": "dpmpp"
          },
          "data": {
            "webdataset_base_url": "{{root}}/shards/{}.tar", "img_embeddings_url": "{{root}}/shards/img_emb",
            "num_workers": 2, "batch_size": 4, "start_shard": 0, "end_shard": 4, "shard_width": 5,
            "splits": { "train": 0.6, "val": 0.2, "test": 0.2 }, "preprocessing": { "ToTensor": true }
          },
          "train": { "epochs": {{epochs}}, "lr": 1e-3, "epoch_samples": 48, "validation_samples": 8, "n_sample_images": 2, "device": "cpu", "save_every_n_samples": 40 },
          "evaluate": {},
          "tracker": {
            "data_path": "{{root}}/run", "log": { "log_type": "console", "auto_resume": {{(autoResume ? "true" : "false")}} {{extraLog}} },
            "save": { "save_to": "local", "save_latest_to": "{{root}}/saved/latest.pth", "save_best_to": "{{root}}/saved/best.pth" }
          }
        }
        """;
        return ConfigLoader.Parse(json);
    }

    /// <summary>One epoch of 8 samples on 5 shards of 8 images: the smallest run that saves a checkpoint.</summary>
    private static TrainDecoderConfig ShortRun(string root)
    {
        SyntheticShapes.WriteDataset(Path.Combine(root, "shards"), shards: 5, perShard: 8, size: 16);
        var config = TinyRun(root, epochs: 1);
        config.Train.EpochSamples = 8;
        return config;
    }

    [Fact]
    public void RunsEpochsAndLeavesCheckpointsGridsAndMetricsThenResumes()
    {
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(Path.Combine(dir.Path, "shards"), shards: 5, perShard: 24, size: 16);
        var lines = new List<string>();
        new TrainDecoderLoop(TinyRun(dir.Path), lines.Add).Run();

        Assert.True(File.Exists(dir.File("run/checkpoint.pth")));
        Assert.True(File.Exists(dir.File("saved/latest.pth")));
        Assert.True(File.Exists(dir.File("saved/best.pth")));
        Assert.True(File.Exists(dir.File("run/samples/epoch001_test.png")));
        Assert.True(File.Exists(dir.File("run/samples/epoch000_samples40_train.png")));   // save_every_n_samples snapshot
        var records = File.ReadAllLines(dir.File("run/metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        // Upstream's keys: unets numbered from 0, logged at batches 0, 10, 20, … of each epoch (12 batches: 0 and 10).
        Assert.DoesNotContain(records, r => r.ContainsKey("Unet 1 Training Loss"));
        var training = records.Where(r => r.ContainsKey("Unet 0 Training Loss")).ToList();
        Assert.Equal(4, training.Count);
        foreach (var key in new[] { "Unet 0 EMA Decay", "Samples per second", "Samples Seen", "Epoch", "Sample", "Step" })
            Assert.True(training[0].ContainsKey(key), key);
        Assert.Equal([0L, 10L, 0L, 10L], training.Select(r => (long)r["Step"]!));
        Assert.Equal(2, records.Count(r => r.ContainsKey("Unet 0 Validation Loss")));
        Assert.Equal(92, (long)training[^1]["Samples Seen"]!);            // batch 10 of the second epoch: 48 + 44

        // Auto-resume: a third epoch continues from the recorded checkpoint.
        var resumedLines = new List<string>();
        new TrainDecoderLoop(TinyRun(dir.Path, epochs: 3, autoResume: true), resumedLines.Add).Run();
        Assert.Contains(resumedLines, l => l.StartsWith("resumed from") && l.Contains("epoch 2") && l.Contains("96 samples seen"));
        Assert.Contains(resumedLines, l => l.StartsWith("epoch 2 done"));
        Assert.DoesNotContain(resumedLines, l => l.StartsWith("epoch 0 done") || l.StartsWith("epoch 1 done"));
    }

    [Fact]
    public void SampleCommandWritesOnePngPerEmbeddingFromTheStoredConfig()
    {
        using var dir = new TestPaths.TempDir();
        var config = ShortRun(dir.Path);
        new TrainDecoderLoop(config, _ => { }).Run();
        var rows = Npy.ReadFile(dir.File("shards/img_emb/img_emb_00000.npy"));
        using (var f = File.Create(dir.File("emb.npy"))) Npy.Write(f, [3, rows.Shape[1]], rows.Data.AsSpan(0, 3 * (int)rows.Shape[1]));

        var r = CliRunner.Run("sample", "--checkpoint", dir.File("run/checkpoint.pth"), "--image-embeddings", dir.File("emb.npy"),
                              "--out", dir.File("out"), "--sampler", "ddim", "--steps", "3", "--seed", "4");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("3 image(s) of 16 px", r.Stdout);
        Assert.Equal(["0000.png", "0001.png", "0002.png", "grid.png"], Directory.GetFiles(dir.File("out")).Select(Path.GetFileName).Order());
        var image = ImageDecoder.Decode(File.ReadAllBytes(dir.File("out/0001.png")));
        Assert.Equal((16, 16), (image.Width, image.Height));

        var bad = CliRunner.Run("sample", "--checkpoint", dir.File("run/checkpoint.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("o2"), "--sampler", "euler");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("is not one of ddpm, ddim, dpmpp", bad.Stderr);

        // Bad values exit 2 with a message, before any work.
        using (var f = File.Create(dir.File("narrow.npy"))) Npy.Write(f, [1, 8], new float[8]);
        foreach (var (args, message) in new (string[], string)[]
        {
            (["--steps", "0"], "--steps must be at least 1"),
            (["--sampler", "dpmpp", "--steps", "25"], "takes at most timesteps (20)"),
            (["--unets", "0"], "numbered from 1"),
            (["--unets", "2-3"], "this decoder has unets 1-1"),
            (["--lowres-images", dir.File("out")], "only used when --unets starts after unet 1"),
            (["--text-encodings", dir.File("emb.npy")], "not conditioned on text"),
        })
        {
            var r2 = CliRunner.Run(["sample", "--checkpoint", dir.File("run/checkpoint.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("o3"), .. args]);
            Assert.True(r2.ExitCode == 2, $"{string.Join(" ", args)}: exit {r2.ExitCode} {r2.Stderr}");
            Assert.Contains(message, r2.Stderr);
        }
        var narrow = CliRunner.Run("sample", "--checkpoint", dir.File("run/checkpoint.pth"), "--image-embeddings", dir.File("narrow.npy"), "--out", dir.File("o4"));
        Assert.Equal(2, narrow.ExitCode);
        Assert.Contains("embeddings are 8 wide, the decoder's image_embed_dim is 32", narrow.Stderr);
    }

    [Fact]
    public void ModelSaverWritesEmaWeightsAndMetaFolderGetsTheConfig()
    {
        using var dir = new TestPaths.TempDir();
        var config = ShortRun(dir.Path);
        config.Tracker.Save.Add(new TrackerSaveConfig { SaveType = "model", SaveLatestTo = dir.File("model-latest.pth"), SaveMetaTo = dir.File("meta") });
        new TrainDecoderLoop(config, _ => { }).Run();

        var model = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(dir.File("model-latest.pth"));
        var checkpoint = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(dir.File("run/checkpoint.pth"));
        Assert.Equal("1.15.6", model["version"]);
        Assert.NotNull(model["config"]);
        var weights = (System.Collections.IDictionary)model["model"]!;
        var ema = (System.Collections.IDictionary)checkpoint["ema"]!;
        var key = "unets.0.init_conv.convs.0.weight";
        Assert.True(((TorchSharp.torch.Tensor)weights[key]!).equal((TorchSharp.torch.Tensor)ema["0.ema_model.init_conv.convs.0.weight"]!).all().item<bool>());
        Assert.True(File.Exists(dir.File("meta/decoder_config.json")));
        Assert.Equal(16, ConfigLoader.LoadFile(dir.File("meta/decoder_config.json")).Decoder.ImageSizes![0]);
    }

    [Fact]
    public void UrlLoaderDownloadsAndResumes()
    {
        using var dir = new TestPaths.TempDir();
        var first = ShortRun(dir.Path);
        new TrainDecoderLoop(first, _ => { }).Run();
        var bytes = File.ReadAllBytes(dir.File("run/checkpoint.pth"));

        Directory.CreateDirectory(dir.File("served"));
        File.WriteAllBytes(dir.File("served/checkpoint.pth"), bytes);
        using var server = new LocalFileServer(dir.File("served"));

        var second = TinyRun(dir.Path, epochs: 2);
        second.Train.EpochSamples = 8;
        second.Tracker.DataPath = dir.File("run2");
        second.Tracker.Load = new TrackerLoadConfig { LoadFrom = "url", Url = server.Url + "checkpoint.pth" };
        var lines = new List<string>();
        new TrainDecoderLoop(second, lines.Add).Run();
        Assert.Contains(lines, x => x.StartsWith("downloaded"));
        Assert.Contains(lines, x => x.StartsWith("resumed from") && x.EndsWith("loaded_checkpoint.pth: epoch 1, 8 samples seen, steps [2]"));
        Assert.Contains(lines, x => x.StartsWith("epoch 1 done"));
    }

    [Fact]
    public void ClipFailsBeforeAnyWork()
    {
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(Path.Combine(dir.Path, "shards"), shards: 5, perShard: 4, size: 16);
        var withClip = TinyRun(dir.Path);
        withClip.Decoder.Clip = new ClipConfig { Model = dir.File("missing/ViT-L-14.pt") };
        withClip.Data.ImgEmbeddingsUrl = null;
        var clip = Assert.Throws<UserInputException>(() => new TrainDecoderLoop(withClip, _ => { }).Run());
        Assert.Contains("nor an existing weights file", clip.Message);
        Assert.False(Directory.Exists(dir.File("run")));
    }

    [Fact]
    public void OverwriteReusesTheFolderAndDeletesNothing()
    {
        using var dir = new TestPaths.TempDir();
        var config = ShortRun(dir.Path);
        Directory.CreateDirectory(dir.File("run/mine"));
        File.WriteAllText(dir.File("run/keep.txt"), "data");
        File.WriteAllText(dir.File("run/mine/notes.txt"), "more");
        Assert.Contains("already exists", Assert.Throws<UserInputException>(() => new TrainDecoderLoop(config, _ => { }).Run()).Message);

        config.Tracker.OverwriteDataPath = true;
        new TrainDecoderLoop(config, _ => { }).Run();
        Assert.Equal("data", File.ReadAllText(dir.File("run/keep.txt")));
        Assert.Equal("more", File.ReadAllText(dir.File("run/mine/notes.txt")));
        Assert.True(File.Exists(dir.File("run/checkpoint.pth")));
    }

    [Fact]
    public void AMovedProjectAutoResumesAndAMissingCheckpointStopsTheRun()
    {
        using var dir = new TestPaths.TempDir();
        var original = Path.Combine(dir.Path, "project");
        Directory.CreateDirectory(original);
        new TrainDecoderLoop(ShortRun(original), _ => { }).Run();
        var run = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(original, "run/run.json")))!;
        Assert.Equal("checkpoint.pth", (string)run["checkpoint"]!);

        var moved = Path.Combine(dir.Path, "moved");
        Directory.Move(original, moved);
        var config = TinyRun(moved, epochs: 2, autoResume: true);
        config.Train.EpochSamples = 8;
        var lines = new List<string>();
        new TrainDecoderLoop(config, lines.Add).Run();
        Assert.Contains(lines, l => l.StartsWith("resumed from " + Path.Combine(moved, "run", "checkpoint.pth")) && l.Contains("epoch 1"));
        Assert.Contains(lines, l => l.StartsWith("epoch 1 done"));

        File.Delete(Path.Combine(moved, "run/checkpoint.pth"));
        var e = Assert.Throws<UserInputException>(() => new TrainDecoderLoop(TinyRun(moved, epochs: 3, autoResume: true), _ => { }).Run());
        Assert.Contains("does not exist", e.Message);
        Assert.Contains("instead of starting over", e.Message);
    }

    [Fact]
    public void SaveImmediatelyAndPythonFormatTemplatesAsUpstream()
    {
        using var dir = new TestPaths.TempDir();
        var config = ShortRun(dir.Path);
        config.Train.SaveImmediately = true;
        config.Tracker.Save[0].SaveLatestTo = dir.File("saved/e{epoch:03d}_s{sample}_{next_task}.pth");
        var lines = new List<string>();
        new TrainDecoderLoop(config, lines.Add).Run();
        // save_immediately: a snapshot at the first batch of the epoch (sample 4); at the epoch's end upstream
        // formats with sample 0 and next_task "sample".
        Assert.Equal(["best.pth", "e000_s0_sample.pth", "e000_s4_train.pth"], Directory.GetFiles(dir.File("saved")).Select(Path.GetFileName).Order());
        Assert.Equal(2, lines.Count(l => l.StartsWith("saved ")));

        config.Tracker.Save[0].SaveLatestTo = dir.File("saved/{epochs}.pth");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(ConfigWriter.ToJson(config)));
        Assert.Contains(e.Errors, x => x.Path == "tracker.save[0].save_latest_to" && x.Message.Contains("unknown field {epochs}"));
    }

    [Fact]
    public void AnUnreachableUrlLoaderExitsWithTheEnvironmentCode()
    {
        using var dir = new TestPaths.TempDir();
        var config = ShortRun(dir.Path);
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();                                                   // nothing listens there now
        config.Tracker.Load = new TrackerLoadConfig { LoadFrom = "url", Url = $"http://127.0.0.1:{port}/checkpoint.pth" };
        File.WriteAllText(dir.File("config.json"), ConfigWriter.ToJson(config));
        var r = CliRunner.Run("train-decoder", "--config", dir.File("config.json"));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}: {r.Stderr}");
        Assert.Contains($"127.0.0.1:{port}", r.Stderr);
        Assert.Contains("Check the network", r.Stderr);
    }

    [Fact]
    public void TheCliRestartsWithHugePagesForTheHeapUnlessTheUserTunedMalloc()
    {
        using var dir = new TestPaths.TempDir();
        string Log(string name, Dictionary<string, string> environment)
        {
            Directory.CreateDirectory(dir.File(name));
            File.WriteAllText(Path.Combine(dir.File(name), "config.json"), ConfigWriter.ToJson(ShortRun(dir.File(name))));
            var r = CliRunner.RunWith(dir.File(name), environment, "train-decoder", "--config", Path.Combine(dir.File(name), "config.json"), "--max-steps", "1");
            Assert.True(r.ExitCode == 0, r.Stderr);
            return r.Stdout + r.Stderr;
        }
        Assert.Contains("allocator: glibc malloc: huge pages for the heap", Log("restarted", []));
        Assert.Contains("allocator: glibc malloc: blocks up to 32 MiB from the heap", Log("opted-out", new() { ["DALLE2_ALLOCATOR_RESTART"] = "0" }));
        Assert.Contains("allocator: glibc malloc as the environment sets it (MALLOC_ARENA_MAX)", Log("user", new() { ["MALLOC_ARENA_MAX"] = "2" }));
    }
}
