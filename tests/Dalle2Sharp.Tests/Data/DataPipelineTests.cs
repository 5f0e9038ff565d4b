using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Data;

public class DataPipelineTests
{
    [Fact]
    public void UpstreamTestShardsGoThroughTheWholePipeline()
    {
        var config = ConfigLoader.LoadFile(TestPaths.SharedFile("configs", "train_decoder_config.test.json")).Data;
        config.WebdatasetBaseUrl = Path.Combine(TestPaths.SharedFile("data", "upstream-test-shards"), "{}.tar");
        config.Preprocessing = DataTestHelpers.PreprocessingFor(64);
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(config, new LoaderOptions { BatchSize = 4, NumWorkers = 2 }, requireEmbeddings: false);
        Assert.Empty(warnings);
        Assert.Equal(70, batches.Sum(b => b.Count));
        Assert.All(batches, b =>
        {
            Assert.Equal(new long[] { b.Count, 3, 64, 64 }, b.Images.shape);
            Assert.True(b.Images.min().item<float>() >= 0 && b.Images.max().item<float>() <= 1);
        });
        var captions = batches.SelectMany(b => b.Captions).ToHashSet();
        Assert.Equal(["buildings", "cat", "motel", "plants", "sea", "small cat", "tree"], captions.Order());
        Assert.True(batches.Max(b => b.Images.std().item<float>()) > 0.1);
    }

    [Fact]
    public void SplitEqualsUpstreamForTheTestConfig()
    {
        var config = ConfigLoader.LoadFile(TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        var splits = ShardSpec.Split(config.Data, config.Seed);
        Assert.Equal([4L, 1, 7, 5, 3, 9, 0, 8], splits.Train.Select(s => s.Number));
        Assert.Equal([6L], splits.Test.Select(s => s.Number));
        Assert.Equal([2L], splits.Val.Select(s => s.Number));
        Assert.Equal("test_data/4.tar", splits.Train[0].Url);
    }

    [Fact]
    public void RanksGetContiguousSlicesAndBraceRangesExpand()
    {
        var data = new DataConfig { WebdatasetBaseUrl = "s/{}.tar", StartShard = 0, EndShard = 10, ShardWidth = 3 };
        var rank1 = ShardSpec.Split(data, 0, rank: 1, worldSize: 2);
        var numbers = rank1.Train.Concat(rank1.Val).Concat(rank1.Test).Select(s => s.Number).Order();
        Assert.Equal([5L, 6, 7, 8, 9], numbers);
        Assert.Equal(["s/007.tar", "s/008.tar", "s/009.tar"], ShardSpec.Urls("s/{007..009}.tar", 0, 0, 0).Select(s => s.Url));
    }

    [Fact]
    public void EmbeddingRowsAlignWithKeys()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 3, perShard: 5);
        var (batches, warnings, _) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 3));
        Assert.Empty(warnings);
        Assert.Equal(15, batches.Sum(b => b.Count));
        foreach (var b in batches)
            for (int i = 0; i < b.Count; i++)
            {
                var key = b.Keys[i];
                var row = b.ImageEmbeddings![i].data<float>().ToArray();
                Assert.Equal(int.Parse(key[..5]), (int)row[0]);   // float16 files (odd shards) hold these exactly too
                Assert.Equal(int.Parse(key[^4..]), (int)row[1]);
                Assert.Equal($"caption {int.Parse(key[..5])} {int.Parse(key[^4..])}", b.Captions[i]);
            }
    }

    [Fact]
    public void ZeroEmbeddingRowsAreSkippedAndCounted()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 2, perShard: 5, zeroRow: (s, i) => i == 3);
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 2));
        Assert.Equal(8, batches.Sum(b => b.Count));
        Assert.Equal(2, issues[DataIssueKind.ZeroEmbedding]);
        Assert.Contains(warnings, w => w.Contains("key 000010003") && w.Contains("00001.tar"));
        Assert.DoesNotContain(batches.SelectMany(b => b.Keys), k => k.EndsWith("0003"));
    }

    [Fact]
    public void CorruptImageTruncatedTarAndMissingNpyAreReportedAndSkipped()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 4, perShard: 5);
        // shard 1: one corrupt jpg; shard 2: truncated in the middle; shard 3: no embedding file.
        ShardBuilder.WriteTar(Path.Combine(dir.Path, "00001.tar"), Enumerable.Range(0, 5).SelectMany(i => new[]
        {
            ($"00001{i:D4}.jpg", i == 2 ? new byte[] { 0xff, 0xd8, 0xff, 0xe0, 1, 2, 3 } : ShardBuilder.Jpeg(i)),
            ($"00001{i:D4}.txt", "c"u8.ToArray()),
        }));
        var full = File.ReadAllBytes(Path.Combine(dir.Path, "00002.tar"));
        File.WriteAllBytes(Path.Combine(dir.Path, "00002.tar"), full[..(full.Length / 2)]);
        File.Delete(Path.Combine(emb, "img_emb_00003.npy"));

        var (batches, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 4));
        Assert.Equal(1, issues[DataIssueKind.CorruptImage]);
        Assert.Contains(warnings, w => w.Contains("corrupt image") && w.Contains("00001.tar") && w.Contains("key 000010002"));
        Assert.Equal(1, issues[DataIssueKind.TruncatedTar]);
        Assert.Contains(warnings, w => w.Contains("truncated tar") && w.Contains("00002.tar"));
        Assert.Equal(1, issues[DataIssueKind.MissingEmbeddingFile]);
        Assert.Contains(warnings, w => w.Contains("img_emb_00003.npy"));
        int fromShard2 = batches.SelectMany(b => b.Keys).Count(k => k.StartsWith("00002"));
        Assert.InRange(fromShard2, 1, 4);
        Assert.Equal(5 + 4 + fromShard2, batches.Sum(b => b.Count));
    }

    [Fact]
    public void ShortEmbeddingFileReportsRowOutOfRange()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 1, perShard: 5);
        using (var f = File.Create(Path.Combine(emb, "img_emb_00000.npy"))) Npy.Write(f, [3, 8], Enumerable.Repeat(1f, 24).ToArray());
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 1));
        Assert.Equal(3, batches.Sum(b => b.Count));
        Assert.Equal(2, issues[DataIssueKind.EmbeddingRowOutOfRange]);
        Assert.Contains(warnings, w => w.Contains("key 000000004") && w.Contains("row 4 is beyond the 3 rows"));
    }

    [Fact]
    public void UnopenableShardIsReportedOnce()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 2, perShard: 3);
        File.Delete(Path.Combine(dir.Path, "00001.tar"));
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 2));
        Assert.Equal(3, batches.Sum(b => b.Count));
        Assert.Equal(1, issues[DataIssueKind.ShardUnreadable]);
        Assert.Single(warnings, w => w.Contains("00001.tar"));
    }

    [Fact]
    public void FourWorkersReadEveryKeyExactlyOnceInADeterministicOrder()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 9, perShard: 7);
        var config = DataTestHelpers.Config(pattern, emb, 9, batch: 3, workers: 4);
        var options = new LoaderOptions { BatchSize = 3, NumWorkers = 4, Shuffle = true, Seed = 11 };
        var keys = DataTestHelpers.ReadAll(config, options).Batches.SelectMany(b => b.Keys).ToList();
        Assert.Equal(63, keys.Count);
        Assert.Equal(63, keys.Distinct().Count());
        Assert.Equal(keys, DataTestHelpers.ReadAll(config, options).Batches.SelectMany(b => b.Keys));
        var otherSeed = DataTestHelpers.ReadAll(config, options with { Seed = 12 }).Batches.SelectMany(b => b.Keys).ToList();
        Assert.NotEqual(keys, otherSeed);
    }

    [Fact]
    public void ResamplingIsEndlessAndBoundedByMaxSamples()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 2, perShard: 3);
        var config = DataTestHelpers.Config(pattern, emb, 2);
        var batches = DataTestHelpers.ReadAll(config, new LoaderOptions { BatchSize = 4, NumWorkers = 2, Resample = true, MaxSamples = 50 }).Batches;
        Assert.Equal(50, batches.Sum(b => b.Count));
    }
}

public class TextEmbeddingTests
{
    [Fact]
    public void PerTokenTextEncodingsAreBatchedPadded()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 1, perShard: 4);
        var text = Directory.CreateDirectory(Path.Combine(dir.Path, "text_emb")).FullName;
        var values = new float[4 * 3 * 2];
        for (int i = 0; i < values.Length; i++) values[i] = i + 1;
        using (var f = File.Create(Path.Combine(text, "text_emb_00000.npy"))) Npy.Write(f, [4, 3, 2], values);
        var config = DataTestHelpers.Config(pattern, emb, 1);
        config.TextEmbeddingsUrl = text;
        var batch = Assert.Single(DataTestHelpers.ReadAll(config, new LoaderOptions { BatchSize = 4, NumWorkers = 1 }).Batches);
        Assert.Equal(new long[] { 4, 3, 2 }, batch.TextEncodings!.shape);
        Assert.Equal(new float[] { 7, 8, 9, 10, 11, 12 }, batch.TextEncodings[1].flatten().data<float>().ToArray());
    }
}
