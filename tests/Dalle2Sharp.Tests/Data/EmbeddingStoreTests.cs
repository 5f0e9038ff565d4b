using Dalle2Sharp.Data;

namespace Dalle2Sharp.Tests.Data;

public sealed class EmbeddingStoreTests
{
    [Fact]
    public void ShardNumbersWiderThanThePaddingFindTheirFiles()
    {
        // Upstream's example config pads to 6 digits but ranges to 9999999: names of 6 and 7 digits mix.
        using var dir = new TestPaths.TempDir();
        foreach (var name in new[] { "img_emb_000005.npy", "img_emb_1234567.npy", "img_emb_765185.npy" })
            using (var f = File.Create(dir.File(name))) Npy.Write(f, [1, 2], [(float)name.Length, 1f]);
        var store = new EmbeddingStore(dir.Path);
        Assert.True(store.HasShard(5) && store.HasShard(1234567) && store.HasShard(765185) && !store.HasShard(6));
        Assert.EndsWith("img_emb_1234567.npy", store.FileFor(1234567));
        Assert.EndsWith("img_emb_765185.npy", store.FileFor(765185));
        Assert.EndsWith("img_emb_000005.npy", store.FileFor(5));
        Assert.Equal("img_emb_1234567.npy".Length, store.Load(1234567).Data[0]);
    }
}
