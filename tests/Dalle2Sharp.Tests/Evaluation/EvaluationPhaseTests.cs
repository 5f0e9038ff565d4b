using Dalle2Sharp.Tests.Servers;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Evaluation;
using Dalle2Sharp.Training;

namespace Dalle2Sharp.Tests.Evaluation;

public class EvaluationPhaseTests
{
    /// <summary>One 16-px unet trained briefly on the 5 synthetic shards under <paramref name="root"/>, with the given evaluate section.</summary>
    private static string SmallRun(string root, int epochs, int epochSamples, string evaluate) => $$"""
        {
          "decoder": { "unets": [{ "dim": 8, "image_embed_dim": 32, "cond_dim": 8, "dim_mults": [1, 2], "attn_dim_head": 8, "attn_heads": 2, "resnet_groups": 4, "num_resnet_blocks": 1 }],
                       "image_sizes": [16], "timesteps": 10, "sample_timesteps": 2, "sampler": "ddim" },
          "data": { "webdataset_base_url": "{{root}}/shards/{}.tar", "img_embeddings_url": "{{root}}/shards/img_emb", "num_workers": 1, "batch_size": 4,
                    "start_shard": 0, "end_shard": 4, "shard_width": 5, "splits": { "train": 0.6, "val": 0.2, "test": 0.2 }, "preprocessing": { "ToTensor": true } },
          "train": { "epochs": {{epochs}}, "epoch_samples": {{epochSamples}}, "validation_samples": 4, "n_sample_images": 0, "device": "cpu" },
          "evaluate": {{evaluate}},
          "tracker": { "data_path": "{{root}}/run", "log": { "log_type": "console" }, "save": { "save_to": "local", "save_latest_to": "{{root}}/latest.pth" } }
        }
        """;

    [Fact]
    public void MissingWeightsAreReportedByNameBeforeAnyWork()
    {
        using var dir = new TestPaths.TempDir();
        var config = new EvaluateConfig { WeightsDir = dir.File("empty"), FID = new FidConfig(), LPIPS = new LpipsConfig { NetType = "squeeze" } };
        var weights = new MetricWeights(config);
        Assert.Equal(3, weights.Required(config).Count);
        var e = Assert.Throws<UserInputException>(() => weights.EnsureAvailable(config, timeout: TimeSpan.FromSeconds(3)));
        Assert.Contains("pt_inception-2015-12-05-6726825d.pth", e.Message);
        Assert.Contains("squeezenet1_1-b8a52dc0.pth", e.Message);
        Assert.Contains("lpips/v0.1/squeeze.pth", e.Message);
        Assert.Contains("get it from https://", e.Message);
        Assert.Empty(new MetricWeights(new EvaluateConfig { WeightsDir = dir.File("empty") }).Required(new EvaluateConfig()));
    }

    [Fact]
    public void MissingWeightsAreDownloadedIntoTheFolder()
    {
        // A mirror laid out as the weights folder (DALLE2_WEIGHTS_MIRROR); the publishers' URLs take the same path.
        using var dir = new TestPaths.TempDir();
        MetricWeightFiles.WriteRandom(dir.File("mirror"), "squeeze");
        using var server = new LocalFileServer(dir.File("mirror"));
        var config = new EvaluateConfig { WeightsDir = dir.File("cache"), FID = new FidConfig(), LPIPS = new LpipsConfig { NetType = "squeeze" } };
        // The test files are random, so their names' hash prefixes cannot hold: their real digests are given.
        var digests = Directory.GetFiles(dir.File("mirror"), "*.pth", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));
        var weights = new MetricWeights(config, mirror: server.Url, knownSha256: digests);
        var lines = new List<string>();
        weights.EnsureAvailable(config, lines.Add, TimeSpan.FromSeconds(10));
        Assert.Equal(3, lines.Count(l => l.StartsWith("downloading " + server.Url)));
        Assert.Contains(lines, l => l.StartsWith("downloaded ") && l.Contains("MB of"));
        foreach (var (path, _) in weights.Required(config))
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir.File("mirror"), Path.GetRelativePath(dir.File("cache"), path))), File.ReadAllBytes(path));
        using (new DecoderEvaluator(config, weights, TorchSharp.torch.CPU)) { }     // the downloaded files load

        // A file the mirror does not have: the error names where it was looked for.
        var alex = new EvaluateConfig { WeightsDir = dir.File("cache"), LPIPS = new LpipsConfig { NetType = "alex" } };
        var e = Assert.Throws<UserInputException>(() => new MetricWeights(alex, mirror: server.Url).EnsureAvailable(alex, timeout: TimeSpan.FromSeconds(10)));
        Assert.Contains(server.Url + "alexnet-owt-7be5be79.pth", e.Message);

        // A file whose content does not match the hash prefix its name carries is removed and named.
        var fresh = new EvaluateConfig { WeightsDir = dir.File("cache2"), LPIPS = new LpipsConfig { NetType = "squeeze" } };
        var bad = Assert.Throws<UserInputException>(() => new MetricWeights(fresh, mirror: server.Url).EnsureAvailable(fresh, timeout: TimeSpan.FromSeconds(10)));
        Assert.Contains("squeezenet1_1-b8a52dc0.pth", bad.Message);
        Assert.Contains("does not start with b8a52dc0", bad.Message);
        Assert.False(File.Exists(Path.Combine(dir.File("cache2"), "squeezenet1_1-b8a52dc0.pth")));
        Assert.Empty(Directory.GetFiles(dir.File("cache2"), "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void KidSubsetLargerThanTheEvaluationIsAConfigError() =>
        new Config.ConfigFixture().Set("evaluate", JsonNode.Parse("""{ "n_evaluation_samples": 4, "KID": { "subset_size": 10 } }"""))
            .AssertError("evaluate.KID.subset_size", "must not exceed n_evaluation_samples (4), got 10");

    [Fact]
    public void EvaluatePhaseLogsEveryMetric()
    {
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(dir.File("shards"), shards: 5, perShard: 8, size: 16);
        MetricWeightFiles.WriteRandom(dir.File("weights"), "vgg");          // AlexNet cannot take 16 px images
        var json = SmallRun(dir.Path, epochs: 1, epochSamples: 8, evaluate: $$"""
            { "n_evaluation_samples": 6, "weights_dir": "{{dir.Path}}/weights", "FID": { "feature": 192 }, "IS": { "splits": 2 },
              "KID": { "feature": 64, "subset_size": 3, "subsets": 4 }, "LPIPS": { "net_type": "vgg" } }
            """);
        File.WriteAllText(dir.File("config.json"), json);
        new TrainDecoderLoop(ConfigLoader.Parse(json), _ => { }).Run();
        var record = File.ReadAllLines(dir.File("run/metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Single(r => r.ContainsKey("FID"));
        foreach (var key in new[] { "FID", "IS_mean", "IS_std", "KID_mean", "KID_std", "LPIPS" })
            Assert.True(record.ContainsKey(key) && double.IsFinite((double)record[key]!), key);
        Assert.True((double)record["FID"]! >= -1e-6);
        Assert.True((double)record["IS_mean"]! >= 1.0 - 1e-6);

        // The same evaluation outside training.
        var r = CliRunner.Run("evaluate", "--checkpoint", dir.File("run/checkpoint.pth"), "--config", dir.File("config.json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var metrics = JsonNode.Parse(r.Stdout)!.AsObject();
        Assert.Equal(["FID", "IS_mean", "IS_std", "Inception input", "KID_mean", "KID_std", "LPIPS", "LPIPS input"], metrics.Select(kv => kv.Key).Order(StringComparer.Ordinal));
        Assert.Contains("TF1", (string)metrics["Inception input"]!);
        Assert.Contains("TF1", (string)record["Inception input"]!);
    }

    [Fact]
    public void ACascadeIsEvaluatedOnItsLastUnetsImages()
    {
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(dir.File("shards"), shards: 5, perShard: 8, size: 32);
        MetricWeightFiles.WriteRandom(dir.File("weights"), "vgg");
        var unet = """{ "dim": 8, "image_embed_dim": 32, "cond_dim": 8, "dim_mults": [1, 2], "attn_dim_head": 8, "attn_heads": 2, "resnet_groups": 4, "num_resnet_blocks": 1 }""";
        var json = $$"""
        {
          "decoder": { "unets": [{{unet}}, {{unet}}], "image_sizes": [16, 32], "timesteps": 25, "sample_timesteps": 2, "sampler": "ddim" },
          "data": { "webdataset_base_url": "{{dir.Path}}/shards/{}.tar", "img_embeddings_url": "{{dir.Path}}/shards/img_emb", "num_workers": 1, "batch_size": 4,
                    "start_shard": 0, "end_shard": 4, "shard_width": 5, "splits": { "train": 0.6, "val": 0.2, "test": 0.2 }, "preprocessing": { "ToTensor": true } },
          "train": { "epochs": 1, "epoch_samples": 4, "validation_samples": 4, "n_sample_images": 0, "device": "cpu" },
          "evaluate": { "n_evaluation_samples": 4, "weights_dir": "{{dir.Path}}/weights", "FID": { "feature": 64 }, "LPIPS": { "net_type": "vgg" } },
          "tracker": { "data_path": "{{dir.Path}}/run", "log": { "log_type": "console" }, "save": { "save_to": "local", "save_latest_to": "{{dir.Path}}/latest.pth" } }
        }
        """;
        var lines = new List<string>();
        new TrainDecoderLoop(ConfigLoader.Parse(json), lines.Add).Run();
        Assert.Contains(lines, l => l.Contains("2 unet(s)"));
        Assert.Contains(lines, l => l.Contains("Unet 1 Validation Loss") && !l.Contains("NaN"));
        var record = File.ReadAllLines(dir.File("run/metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Single(r => r.ContainsKey("FID"));
        Assert.True(double.IsFinite((double)record["FID"]!) && (double)record["FID"]! >= -1e-6);
        // LPIPS compares 32-px generated images with the 32-px real ones (a size mismatch would throw); the
        // random test heads can be negative, so only finiteness says something here.
        Assert.True(double.IsFinite((double)record["LPIPS"]!), record.ToJsonString());

        // dalle2 sample runs the cascade end to end, and from given low-res images when it starts at unet 2.
        var rows = Npy.ReadFile(dir.File("shards/img_emb/img_emb_00000.npy"));
        using (var f = File.Create(dir.File("emb.npy"))) Npy.Write(f, [2, rows.Shape[1]], rows.Data.AsSpan(0, 2 * (int)rows.Shape[1]));
        var full = CliRunner.Run("sample", "--checkpoint", dir.File("latest.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("full"), "--sampler", "ddim", "--steps", "2");
        Assert.True(full.ExitCode == 0, full.Stderr);
        Assert.Contains("2 image(s) of 32 px", full.Stdout);
        Directory.CreateDirectory(dir.File("low"));
        foreach (var i in new[] { 0, 1 }) File.WriteAllBytes(dir.File($"low/{i}.png"), ImageDecoder.EncodePng(new RgbImage(16, 16, Enumerable.Repeat((byte)(100 + 50 * i), 16 * 16 * 3).ToArray())));
        var upsampled = CliRunner.Run("sample", "--checkpoint", dir.File("latest.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("up"),
                                      "--sampler", "ddim", "--steps", "2", "--unets", "2-2", "--lowres-images", dir.File("low"));
        Assert.True(upsampled.ExitCode == 0, upsampled.Stderr);
        Assert.Contains("2 image(s) of 32 px", upsampled.Stdout);
        var missing = CliRunner.Run("sample", "--checkpoint", dir.File("latest.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("up2"), "--unets", "2");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("--lowres-images", missing.Stderr);

        // A masked run's checkpoint (upstream drops the untrained unet's weights): sampling never runs a
        // unet the file has no weights for — by default it starts at the first unet it has.
        var root = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(dir.File("latest.pth"));
        foreach (var name in new[] { "model", "ema" })
        {
            var dict = (System.Collections.IDictionary)root[name]!;
            foreach (var key in dict.Keys.Cast<string>().Where(k => k.StartsWith("unets.0.") || k.StartsWith("0.online_model.") || k.StartsWith("0.ema_model.")).ToList())
                dict.Remove(key);
        }
        var config = (System.Collections.IDictionary)((System.Collections.IDictionary)root["config"]!)["train"]!;
        config["unet_training_mask"] = new System.Collections.ArrayList { false, true };
        using (var f = File.Create(dir.File("masked.pth"))) TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(f, root, leaveOpen: true);
        var masked = CliRunner.Run("sample", "--checkpoint", dir.File("masked.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("m"));
        Assert.Equal(2, masked.ExitCode);
        Assert.Contains("starts at unet 2", masked.Stderr);
        var lacking = CliRunner.Run("sample", "--checkpoint", dir.File("masked.pth"), "--image-embeddings", dir.File("emb.npy"), "--out", dir.File("m"), "--unets", "1-2");
        Assert.Equal(2, lacking.ExitCode);
        Assert.Contains("has no weights for unet 1", lacking.Stderr);
    }

    [Fact]
    public void AMetricThatCannotBeComputedIsLoggedAfterTheCheckpointAndTrainingGoesOn()
    {
        // KID's subset_size (6) fits n_evaluation_samples (8) but not the 4 images the validation shard
        // turns out to have: known only at run time, so it is logged and skipped; FID is still computed.
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(dir.File("shards"), shards: 5, perShard: 4, size: 16);
        MetricWeightFiles.WriteRandom(dir.File("weights"), "vgg");
        var json = SmallRun(dir.Path, epochs: 2, epochSamples: 4, evaluate: $$"""
            { "n_evaluation_samples": 8, "weights_dir": "{{dir.Path}}/weights", "FID": { "feature": 64 }, "KID": { "feature": 64, "subset_size": 6, "subsets": 2 } }
            """);
        var lines = new List<string>();
        new TrainDecoderLoop(ConfigLoader.Parse(json), lines.Add).Run();
        int saved = lines.FindIndex(l => l.StartsWith("saved "));
        int failed = lines.FindIndex(l => l.Contains("evaluation failed in epoch 0") && l.Contains("KID: subset_size 6 is larger than the 4 images"));
        Assert.True(saved >= 0 && failed > saved, string.Join("\n", lines));
        Assert.Contains(lines, l => l.StartsWith("epoch 1 done"));                       // training went on
        var records = File.ReadAllLines(dir.File("run/metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(2, records.Count(r => r.ContainsKey("FID") && !r.ContainsKey("KID_mean")));
        Assert.Equal(2, records.Count(r => r.ContainsKey("Evaluation error")));
        Assert.True(File.Exists(dir.File("latest.pth")));
    }
}
