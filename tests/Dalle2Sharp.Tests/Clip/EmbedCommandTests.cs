using Dalle2Sharp.Clip;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Tests.Data;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Clip;

/// <summary>`dalle2 embed` with the small ViT archive: clip-retrieval's layout, rows aligned to keys, resumable per shard.</summary>
public sealed class EmbedCommandTests
{
    private static string Archive => ClipTestFiles.ViTTiny;

    [Fact]
    public void EmbeddingsAreWrittenPerShardAlignedToKeysAndReadByTraining()
    {
        using var dir = new TestPaths.TempDir();
        ShardBuilder.Dataset(dir.Path, shards: 2, perShard: 5);
        string[] args = ["embed", "--shards", Path.Combine(dir.Path, "{}.tar"), "--start", "0", "--end", "1", "--shard-width", "5",
            "--index-width", "4", "--clip", Archive, "--out", dir.File("out"), "--text", "--text-encodings", "--batch-size", "3", "--workers", "2"];
        var first = CliRunner.Run(args);
        Assert.True(first.ExitCode == 0, first.Stdout + first.Stderr);
        Assert.Contains("embedded 10 images from 2 shard(s)", first.Stdout);

        var images = Npy.ReadFile(dir.File("out/img_emb/img_emb_00001.npy"));
        var texts = Npy.ReadFile(dir.File("out/text_emb/text_emb_00001.npy"));
        var tokens = Npy.ReadFile(dir.File("out/text_encodings/text_encodings_00001.npy"));
        Assert.Equal([5L, 32], images.Shape);
        Assert.Equal([5L, 32], texts.Shape);
        Assert.Equal([5L, 77, 128], tokens.Shape);

        // Row 3 of shard 1 is key 000010003: CLIP's preprocessing (bicubic shorter side, centre crop) and the
        // adapter's embedding of that image, stored as float16.
        using var model = ClipWeights.Build(Archive);
        var embedder = new ClipEmbedder(model);
        using var image = new ImageTransforms(embedder.Preprocessing()).Apply(ShardBuilder.Jpeg(1 * 100 + 3));
        var expected = embedder.EmbedImage(image.unsqueeze(0)).data<float>().ToArray();
        var stored = images.Row(3).ToArray();
        Assert.All(expected.Zip(stored), x => Assert.True(Math.Abs(x.First - x.Second) < 2e-3, $"{x.First} vs {x.Second}"));
        using var ids = ClipTokenizer.Shared.Tokenize(["caption 1 3"]);
        var expectedText = embedder.EmbedText(ids).Embed.data<float>().ToArray();
        Assert.All(expectedText.Zip(texts.Row(3).ToArray()), x => Assert.True(Math.Abs(x.First - x.Second) < 2e-3));

        // The training reader takes the folder as it is: every sample with its own row, no warnings.
        var config = DataTestHelpers.Config(Path.Combine(dir.Path, "{}.tar"), dir.File("out/img_emb"), 2);
        var (batches, warnings, _) = DataTestHelpers.ReadAll(config);
        Assert.Empty(warnings);
        Assert.Equal(10, batches.Sum(b => b.Count));

        // Finished shards are skipped; a missing output makes its shard run again.
        var second = CliRunner.Run(args);
        Assert.Contains("2 shard(s) already done", second.Stdout);
        File.Delete(dir.File("out/text_emb/text_emb_00000.npy"));
        var third = CliRunner.Run(args);
        Assert.Contains("embedded 5 images from 1 shard(s)", third.Stdout);
        Assert.True(File.Exists(dir.File("out/text_emb/text_emb_00000.npy")));
    }
}
