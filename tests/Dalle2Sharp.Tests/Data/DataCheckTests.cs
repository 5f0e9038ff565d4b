using System.Text;

namespace Dalle2Sharp.Tests.Data;

/// <summary>`dalle2 data check` on small datasets: a good one passes; each kind of fault is named with its shard and fails the verdict.</summary>
public sealed class DataCheckTests
{
    private static string Config(string root, int embedDim = 8, int indexWidth = 4, int endShard = 4) => $$"""
        {
          "seed": 3,
          "decoder": { "unets": [{ "dim": 8, "image_embed_dim": {{embedDim}}, "cond_dim": 12, "dim_mults": [1, 2] }], "image_sizes": [16] },
          "data": {
            "webdataset_base_url": "{{root}}/{}.tar", "img_embeddings_url": "{{root}}/img_emb",
            "batch_size": 4, "start_shard": 0, "end_shard": {{endShard}}, "shard_width": 5, "index_width": {{indexWidth}},
            "splits": { "train": 0.6, "val": 0.2, "test": 0.2 }, "preprocessing": { "ToTensor": true }
          },
          "train": { "device": "cpu" }, "evaluate": {},
          "tracker": { "data_path": "{{root}}/run", "log": { "log_type": "console" }, "save": { "save_to": "local", "save_latest_to": "{{root}}/latest.pth" } }
        }
        """;

    private static CliRunner.Result Check(TestPaths.TempDir dir, string json, params string[] extra)
    {
        File.WriteAllText(dir.File("config.json"), json);
        return CliRunner.Run(["data", "check", "--config", dir.File("config.json"), .. extra]);
    }

    [Fact]
    public void AGoodDatasetPassesAndEachFaultIsNamed()
    {
        using var dir = new TestPaths.TempDir();
        ShardBuilder.Dataset(dir.Path, shards: 5, perShard: 4);
        var ok = Check(dir, Config(dir.Path), "--decode");
        Assert.True(ok.ExitCode == 0, ok.Stdout + ok.Stderr);
        Assert.Contains("verdict: ok (5 shard(s) checked, images decoded)", ok.Stdout);
        Assert.Contains("usable shards: train 3, val 1, test 1", ok.Stdout);

        // The embedding width the unet expects.
        var width = Check(dir, Config(dir.Path, embedDim: 16));
        Assert.Equal(1, width.ExitCode);
        Assert.Contains("8 wide, decoder.unets[0].image_embed_dim is 16", width.Stdout);

        // Keys of 5 + 4 digits read with index_width 3.
        var keys = Check(dir, Config(dir.Path, indexWidth: 3));
        Assert.Equal(1, keys.ExitCode);
        Assert.Contains("check shard_width / index_width", keys.Stdout);
    }

    [Fact]
    public void ZeroRowsShortFilesUnreadableShardsAndAnEmptySplitFailTheVerdict()
    {
        using var dir = new TestPaths.TempDir();
        ShardBuilder.Dataset(dir.Path, shards: 5, perShard: 4, zeroRow: (s, i) => s == 1 && i == 2);
        // Shard 2's embedding file has 2 rows for 4 keys; shard 3's tar is damaged.
        using (var f = File.Create(Path.Combine(dir.Path, "img_emb", "img_emb_00002.npy")))
            Dalle2Sharp.Data.Npy.Write(f, [2, 8], new float[16].Select((_, i) => 1f + i).ToArray());
        File.WriteAllBytes(Path.Combine(dir.Path, "00003.tar"), Encoding.ASCII.GetBytes("not a tar file at all, certainly not 512 bytes of header"));
        var r = Check(dir, Config(dir.Path));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("1 key(s) have an all-zero embedding row", r.Stdout);
        Assert.Contains("2 key(s) have no embedding row", r.Stdout);
        Assert.Contains("verdict: NOT ok", r.Stdout);

        // A range where a split gets no usable shard (one shard only).
        var single = Check(dir, Config(dir.Path, endShard: 0));
        Assert.Equal(1, single.ExitCode);
        Assert.Contains("split gets no usable shard", single.Stdout);
    }
}
