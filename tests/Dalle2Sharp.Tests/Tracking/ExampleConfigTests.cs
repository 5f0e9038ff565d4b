using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Tests.Data;
using Dalle2Sharp.Tests.Evaluation;
using Dalle2Sharp.Tests.Servers;

namespace Dalle2Sharp.Tests.Tracking;

/// <summary>
/// Upstream's own example decoder config (../shared/configs/train_decoder_config.example.json, read
/// as it is) trains with its data on S3 — shards through `pipe:s3cmd get …`, embeddings listed and read
/// from an s3:// folder — logging to wandb, saving to wandb and to a Hugging Face repo, against s3rver and
/// the wandb and Hub stand-ins; a second run loads the checkpoint back from wandb.
/// The command line changes only what a CPU smoke run must: the device (the config asks for cuda:0), the
/// Unet's width (186 M parameters at dim 128), the batch size and DDIM sampling steps.
/// </summary>
[Collection("Services")]
public sealed class ExampleConfigTests
{
    private static readonly string[] SmokeOverrides =
    [
        "--set", "train.device=cpu", "--set", "decoder.unets[0].dim=16", "--set", "data.batch_size=8", "--set", "decoder.sample_timesteps=4",
    ];

    private const int PerShard = 8;

    /// <summary>A shard of the example config's layout: keys of shard_width 6 + index_width 4 digits, jpg and txt.</summary>
    private static byte[] Shard(long shard)
    {
        using var stream = new MemoryStream();
        using (var writer = new TarWriter(stream, TarEntryFormat.Ustar, leaveOpen: true))
            for (int i = 0; i < PerShard; i++)
            {
                string key = $"{shard:D6}{i:D4}";
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, $"{key}.jpg")
                    { DataStream = new MemoryStream(ShardBuilder.Jpeg(i, 96, 80)) });
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, $"{key}.txt")
                    { DataStream = new MemoryStream(Encoding.UTF8.GetBytes($"shape {i}")) });
            }
        return stream.ToArray();
    }

    [SkippableFact]
    public void TheExampleConfigTrainsFromS3LogsAndSavesToWandbAndTheHubAndLoadsBackFromWandb()
    {
        S3Server.SkipUnlessInstalled();
        Skip.If(!File.Exists("/usr/bin/s3cmd"), "s3cmd is not installed (apt-get install s3cmd; .ci/run does it)");
        string example = TestPaths.SharedFile("configs", "train_decoder_config.example.json");
        using var dir = new TestPaths.TempDir();
        using var s3 = new S3Server();
        using var wandb = new WandbServer();
        using var hub = new HubServer { LfsThreshold = 64 * 1024, MultipartThreshold = 1 << 20, ChunkSize = 512 * 1024 };
        s3.ApplyToProcess();

        // The shards the example's split (seed, 0..9999999, 75/15/10) puts in train, val and test get data.
        var config = ConfigLoader.LoadFile(example);
        var splits = ShardSpec.Split(config.Data, config.Seed);
        var shards = splits.Train.Take(2).Concat(splits.Val.Take(1)).Concat(splits.Test.Take(1)).Select(s => s.Number).ToList();
        var rng = new Random(5);
        foreach (var shard in shards)
        {
            File.WriteAllBytes(dir.File("shard.tar"), Shard(shard));
            S3Storage.Upload(dir.File("shard.tar"), $"s3://bucket/path/{shard:D6}.tar");
            var embeddings = Enumerable.Range(0, PerShard * 768).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            using (var npy = File.Create(dir.File("emb.npy"))) Npy.Write(npy, [PerShard, 768], embeddings, float16: true);
            S3Storage.Upload(dir.File("emb.npy"), $"s3://bucket/img_embeddings/path/img_emb_{shard:D6}.npy");
        }
        var weights = Directory.CreateDirectory(dir.File("weights")).FullName;
        MetricWeightFiles.WriteRandom(weights, "vgg");
        var env = new Dictionary<string, string>(s3.Environment)
        {
            ["S3CMD_CONFIG"] = s3.WriteS3cmdConfig(dir.File("s3cfg")), ["DALLE2_WEIGHTS_DIR"] = weights, ["NETRC"] = "/nonexistent",
        };
        foreach (var (k, v) in wandb.Environment) env[k] = v;
        foreach (var (k, v) in hub.Environment) env[k] = v;
        var work = Directory.CreateDirectory(dir.File("work")).FullName;

        var first = CliRunner.RunWith(work, env, ["train-decoder", "--config", example, "--max-steps", "2", .. SmokeOverrides]);
        Assert.True(first.ExitCode == 0, first.Stdout + first.Stderr);
        if (Environment.GetEnvironmentVariable("DALLE2_TEST_DUMP") is { } dump) File.WriteAllText(dump, first.Stdout + first.Stderr);
        var dataPath = Path.Combine(work, ".tracker_data");

        // wandb: the run under the config's entity and project, with upstream's metric keys, images and the saved file.
        var run = Assert.Single(wandb.Runs.Values);
        Assert.Equal(("your_wandb", "your_project"), (run.Entity, run.Project));
        var rows = run.History.Select(WandbServer.ParseLine).ToList();
        Assert.Contains(rows, r => r.ContainsKey("Unet 0 Training Loss") && r.ContainsKey("Samples per second"));
        Assert.Contains(rows, r => r.ContainsKey("Unet 0 Validation Loss"));
        Assert.Contains(rows, r => r["Train Samples"]?["_type"]?.GetValue<string>() == "images/separated");
        Assert.Contains(rows, r => r["Test Samples"]?["count"]?.GetValue<int>() == config.Train.NSampleImages);
        Assert.Contains(rows, r => r["Train Samples"]?["captions"]?[0]?.GetValue<string>().StartsWith("Train: shape ") == true);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dataPath, "latest.pth")), run.Files["latest.pth"]);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("cpu", run.Config["train"]!["value"]!["device"]!.GetValue<string>());

        // The Hub: the model file (save_type model) at the config's paths, and the config under save_meta_to.
        var repo = hub.Repos["Veldrovive/test_model"];
        Assert.Equal(File.ReadAllBytes(Path.Combine(dataPath, "model.pth")), repo.Files["path/to/model_dir/latest.pth"]);
        Assert.True(repo.Files.ContainsKey("path/to/model_dir/best.pth"));
        Assert.Contains("\"decoder\"", Encoding.UTF8.GetString(repo.Files["path/to/directory/for/assorted/files/decoder_config.json"]));

        // No secret in anything the run wrote.
        foreach (var file in Directory.GetFiles(dataPath, "*", SearchOption.AllDirectories))
        {
            var text = File.ReadAllText(file, Encoding.Latin1);
            Assert.DoesNotContain(wandb.ApiKey, text);
            Assert.DoesNotContain(hub.Token, text);
            Assert.DoesNotContain(S3Server.SecretKey + "\n", text);
        }
        Assert.DoesNotContain(wandb.ApiKey, first.Stdout + first.Stderr);

        // A second run loads the checkpoint from the first run's wandb files.
        var second = CliRunner.RunWith(work, env, ["train-decoder", "--config", example, "--max-steps", "1", .. SmokeOverrides,
            "--set", "tracker.load.load_from=wandb", "--set", "tracker.load.wandb_file_path=latest.pth",
            "--set", $"tracker.load.wandb_run_path=your_wandb/your_project/{run.Name}"]);
        Assert.True(second.ExitCode == 0, second.Stdout + second.Stderr);
        Assert.Contains("downloading latest.pth from wandb run", second.Stdout);
        Assert.Contains("resumed from", second.Stdout);
        Assert.Equal(2, wandb.Runs.Count);
    }
}
