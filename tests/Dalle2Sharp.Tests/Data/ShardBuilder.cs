using System.Formats.Tar;
using System.Text;
using Dalle2Sharp.Data;

namespace Dalle2Sharp.Tests.Data;

/// <summary>Writes small webdataset shards and embedding folders for tests.</summary>
public static class ShardBuilder
{
    /// <summary>A flat-colour JPEG whose red channel encodes <paramref name="index"/>.</summary>
    public static byte[] Jpeg(int index, int width = 40, int height = 30)
    {
        var pixels = new byte[width * height * 3];
        for (int i = 0; i < pixels.Length; i += 3) { pixels[i] = (byte)(index * 7 % 256); pixels[i + 1] = 128; pixels[i + 2] = 64; }
        return ImageDecoder.EncodeJpeg(new RgbImage(width, height, pixels), 95);
    }

    public static void WriteTar(string path, IEnumerable<(string Name, byte[] Content)> files)
    {
        using var stream = File.Create(path);
        using var writer = new TarWriter(stream, TarEntryFormat.Ustar);
        foreach (var (name, content) in files)
            writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) });
    }

    /// <summary>
    /// Shards 0..shards-1 named {shard:D5}.tar with keys {shard:D5}{i:D4} (img2dataset style), each
    /// with jpg + txt; img_emb_{shard:D5}.npy where row i = [shard, i, 1, …] so alignment can be checked.
    /// </summary>
    public static (string ShardPattern, string EmbeddingFolder) Dataset(string root, int shards, int perShard, int embedDim = 8, Func<int, int, bool>? zeroRow = null)
    {
        var emb = Directory.CreateDirectory(Path.Combine(root, "img_emb")).FullName;
        for (int s = 0; s < shards; s++)
        {
            var files = new List<(string, byte[])>();
            var rows = new float[perShard * embedDim];
            for (int i = 0; i < perShard; i++)
            {
                string key = $"{s:D5}{i:D4}";
                files.Add(($"{key}.jpg", Jpeg(s * 100 + i)));
                files.Add(($"{key}.txt", Encoding.UTF8.GetBytes($"caption {s} {i}")));
                if (zeroRow?.Invoke(s, i) == true) continue;
                rows[i * embedDim] = s;
                rows[i * embedDim + 1] = i;
                for (int d = 2; d < embedDim; d++) rows[i * embedDim + d] = 1;
            }
            WriteTar(Path.Combine(root, $"{s:D5}.tar"), files);
            using var npy = File.Create(Path.Combine(emb, $"img_emb_{s:D5}.npy"));
            Npy.Write(npy, [perShard, embedDim], rows, float16: s % 2 == 1);
        }
        return (Path.Combine(root, "{}.tar"), emb);
    }
}
