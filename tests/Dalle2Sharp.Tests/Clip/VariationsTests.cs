using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Training;

namespace Dalle2Sharp.Tests.Clip;

/// <summary>A tiny decoder trained with decoder.clip (the small ViT archive), then `dalle2 variations` of two images.</summary>
public sealed class VariationsTests
{
    private static string Archive => ClipTestFiles.ViTTiny;

    [Fact]
    public void ADecoderTrainedWithClipMakesVariationsOfImages()
    {
        using var dir = new TestPaths.TempDir();
        SyntheticShapes.WriteDataset(dir.File("shards"), shards: 5, perShard: 8, size: 32);
        var root = dir.Path;
        var config = ConfigLoader.Parse($$"""
        {
          "seed": 3,
          "decoder": {
            "unets": [{ "dim": 8, "cond_dim": 8, "dim_mults": [1, 2], "attn_dim_head": 8, "attn_heads": 2, "resnet_groups": 4, "num_resnet_blocks": 1 }],
            "image_sizes": [16], "timesteps": 20, "sample_timesteps": 2, "sampler": "dpmpp",
            "clip": { "make": "openai", "model": "{{Archive}}" }
          },
          "data": {
            "webdataset_base_url": "{{root}}/shards/{}.tar", "num_workers": 2, "batch_size": 4, "start_shard": 0, "end_shard": 4, "shard_width": 5,
            "splits": { "train": 0.6, "val": 0.2, "test": 0.2 }, "preprocessing": { "ToTensor": true }
          },
          "train": { "epochs": 1, "lr": 1e-3, "epoch_samples": 8, "validation_samples": 4, "n_sample_images": 2, "device": "cpu" },
          "evaluate": {},
          "tracker": { "data_path": "{{root}}/run", "log": { "log_type": "console" }, "save": { "save_to": "local", "save_latest_to": "{{root}}/latest.pth" } }
        }
        """);
        var lines = new List<string>();
        Assert.True(new TrainDecoderLoop(config, lines.Add).Run());
        Assert.Contains(lines, l => l.StartsWith("CLIP: openai") && l.Contains("32 px, embeddings 32"));
        Assert.Contains(lines, l => l.Contains("CLIP ms per batch"));

        // Two images (PNG and JPEG) × 3 variations; the image_embed_dim came from CLIP and is in the stored config.
        File.WriteAllBytes(dir.File("a.jpg"), Data.ShardBuilder.Jpeg(3, 48, 40));
        File.WriteAllBytes(dir.File("b.png"), ImageDecoder.EncodePng(new RgbImage(36, 36, Enumerable.Range(0, 36 * 36 * 3).Select(i => (byte)(i * 7)).ToArray())));
        var r = CliRunner.Run("variations", "--checkpoint", dir.File("run/checkpoint.pth"), "--images", $"{dir.File("a.jpg")},{dir.File("b.png")}",
            "-n", "3", "--out", dir.File("out"), "--seed", "5");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("2 image(s) × 3 variation(s) of 16 px", r.Stdout);
        var grid = ImageDecoder.Decode(File.ReadAllBytes(dir.File("out/grid.png")));
        Assert.Equal((4 * 16, 2 * 16), (grid.Width, grid.Height));
        var first = File.ReadAllBytes(dir.File("out/000_00.png"));
        Assert.NotEqual(first, File.ReadAllBytes(dir.File("out/000_01.png")));   // different noise, different images
        Assert.True(File.Exists(dir.File("out/001_02.png")));

        // The sampler options are checked as `dalle2 sample` checks them: exit 2 with the reason, before any work.
        foreach (var (args, message) in new (string[], string)[]
        {
            (["--steps", "0"], "--steps must be at least 1"),
            (["--sampler", "ddim", "--steps", "9999"], "ddim takes at most timesteps"),
        })
        {
            var bad = CliRunner.Run(["variations", "--checkpoint", dir.File("run/checkpoint.pth"), "--images", dir.File("a.jpg"),
                "--out", dir.File("bad"), .. args]);
            Assert.True(bad.ExitCode == 2, $"{string.Join(" ", args)}: exit {bad.ExitCode} {bad.Stderr}");
            Assert.Contains(message, bad.Stderr);
            Assert.False(Directory.Exists(dir.File("bad")));
        }
    }
}
