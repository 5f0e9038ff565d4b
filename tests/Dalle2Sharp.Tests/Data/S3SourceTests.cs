using Dalle2Sharp.Data;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Tests.Servers;

namespace Dalle2Sharp.Tests.Data;

/// <summary>
/// s3:// shards and embedding folders through the AWS SDK against s3rver, a real S3-compatible server
/// on loopback (signatures checked), and upstream's own `pipe:s3cmd get … -` URL against the same bucket.
/// </summary>
[Collection("Services")]
public sealed class S3SourceTests
{
    private static (TestPaths.TempDir Dir, S3Server Server) DatasetInBucket(int shards, int perShard)
    {
        var dir = new TestPaths.TempDir();
        ShardBuilder.Dataset(dir.Path, shards, perShard);
        var server = new S3Server();
        server.ApplyToProcess();
        for (int s = 0; s < shards; s++)
        {
            S3Storage.Upload(Path.Combine(dir.Path, $"{s:D5}.tar"), $"s3://bucket/shards/{s:D5}.tar");
            S3Storage.Upload(Path.Combine(dir.Path, "img_emb", $"img_emb_{s:D5}.npy"), $"s3://bucket/embeddings/img_emb/img_emb_{s:D5}.npy");
        }
        return (dir, server);
    }

    private static void AssertAligned(List<DecoderBatch> batches)
    {
        foreach (var batch in batches)
            for (int i = 0; i < batch.Count; i++)
            {
                // Row i of shard s was written as (s, i, 1, …): the key's shard and index must match it.
                Assert.Equal(int.Parse(batch.Keys[i][..5]), batch.ImageEmbeddings![i, 0].item<float>());
                Assert.Equal(int.Parse(batch.Keys[i][5..]), batch.ImageEmbeddings![i, 1].item<float>());
            }
    }

    [SkippableFact]
    public void ShardsAndEmbeddingsAreReadFromS3AsFromDisk()
    {
        S3Server.SkipUnlessInstalled();
        var (dir, server) = DatasetInBucket(3, 4);
        using (dir) using (server)
        {
            // The folder is listed with ListObjectsV2 (delimiter "/"), with or without a trailing slash.
            Assert.Equal(["img_emb_00000.npy", "img_emb_00001.npy", "img_emb_00002.npy"],
                Storage.List("s3://bucket/embeddings/img_emb", ".npy").Order(StringComparer.Ordinal));
            var config = DataTestHelpers.Config("s3://bucket/shards/{}.tar", "s3://bucket/embeddings/img_emb/", 3);
            var (batches, warnings, _) = DataTestHelpers.ReadAll(config);
            Assert.True(warnings.Count == 0, string.Join("\n", warnings));
            Assert.Equal(12, batches.Sum(b => b.Count));
            AssertAligned(batches);
            var local = DataTestHelpers.ReadAll(DataTestHelpers.Config(Path.Combine(dir.Path, "{}.tar"), Path.Combine(dir.Path, "img_emb"), 3));
            Assert.Equal(local.Batches.SelectMany(b => b.Keys).Order(), batches.SelectMany(b => b.Keys).Order());
        }
    }

    [SkippableFact]
    public void AMissingObjectIsADataIssueAndAnObjectDownloadsByteForByte()
    {
        S3Server.SkipUnlessInstalled();
        var (dir, server) = DatasetInBucket(2, 3);
        using (dir) using (server)
        {
            // Shard 2 has embeddings but no tar: reported with its URL and skipped.
            S3Storage.Upload(Path.Combine(dir.Path, "img_emb", "img_emb_00000.npy"), "s3://bucket/embeddings/img_emb/img_emb_00002.npy");
            var (batches, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config("s3://bucket/shards/{}.tar", "s3://bucket/embeddings/img_emb", 3));
            Assert.Equal(6, batches.Sum(b => b.Count));
            Assert.Equal(1, issues[DataIssueKind.ShardUnreadable]);
            Assert.Contains(warnings, w => w.Contains("s3://bucket/shards/00002.tar") && w.Contains("not found"));

            var target = Path.Combine(dir.Path, "copy.tar");
            Storage.Download("s3://bucket/shards/00001.tar", target, null);
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir.Path, "00001.tar")), File.ReadAllBytes(target));
        }
    }

    [SkippableFact]
    public void WrongCredentialsAreAClearErrorThatNeverShowsTheSecret()
    {
        S3Server.SkipUnlessInstalled();
        var (dir, server) = DatasetInBucket(1, 2);
        using (dir) using (server)
        {
            const string secret = "wrong-secret-value-1234";
            Environment.SetEnvironmentVariable("AWS_SECRET_ACCESS_KEY", secret);
            Environment.SetEnvironmentVariable("AWS_ACCESS_KEY_ID", "SOMEONE");
            var e = Assert.ThrowsAny<UserInputException>(() => new EmbeddingStore("s3://bucket/embeddings/img_emb"));
            Assert.Contains("s3://bucket/embeddings/img_emb", e.Message);
            Assert.Contains("403", e.Message);
            Assert.DoesNotContain(secret, e.ToString());
        }
    }

    [SkippableFact]
    public void UpstreamsPipeS3cmdUrlReadsTheSameBucket()
    {
        S3Server.SkipUnlessInstalled();
        Skip.If(!File.Exists("/usr/bin/s3cmd"), "s3cmd is not installed (apt-get install s3cmd; .ci/run does it)");
        var (dir, server) = DatasetInBucket(2, 3);
        using (dir) using (server)
        {
            Environment.SetEnvironmentVariable("S3CMD_CONFIG", server.WriteS3cmdConfig(Path.Combine(dir.Path, "s3cfg")));
            try
            {
                var config = DataTestHelpers.Config("pipe:s3cmd get s3://bucket/shards/{}.tar -", "s3://bucket/embeddings/img_emb/", 2);
                var (batches, warnings, _) = DataTestHelpers.ReadAll(config);
                Assert.True(warnings.Count == 0, string.Join("\n", warnings));
                Assert.Equal(6, batches.Sum(b => b.Count));
                AssertAligned(batches);
            }
            finally { Environment.SetEnvironmentVariable("S3CMD_CONFIG", null); }
        }
    }
}
