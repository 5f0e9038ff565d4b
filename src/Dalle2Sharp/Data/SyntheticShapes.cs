using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>
/// The quickstart dataset: images of one coloured disc or square on a contrasting background, and a
/// stand-in for CLIP's image embedding computed from what is drawn (colours, shape, position, size),
/// projected to 32 dims by a fixed random matrix and L2-normalised. No CLIP weights ship with the
/// repository, so this is what lets a decoder learn to follow its conditioning out of the box.
/// </summary>
public static class SyntheticShapes
{
    public const int EmbedDim = 32;

    public static (Tensor Images, Tensor Embeds) Batch(int count, int size, Generator g)
    {
        var p = rand([count, 10], generator: g, dtype: float32);
        var fg = p[.., 0..3];
        var bg = 1 - fg * 0.8f;
        var isDisc = p[.., 3] < 0.5;
        var cx = 0.3f + 0.4f * p[.., 4];
        var cy = 0.3f + 0.4f * p[.., 5];
        var r = 0.15f + 0.15f * p[.., 6];
        var coords = (arange(size, dtype: float32) + 0.5f) / size;
        var yy = coords.reshape(1, size, 1);
        var xx = coords.reshape(1, 1, size);
        var dx = xx - cx.reshape(-1, 1, 1);
        var dy = yy - cy.reshape(-1, 1, 1);
        var disc = (dx.square() + dy.square()) < r.reshape(-1, 1, 1).square();
        var square = (dx.abs() < r.reshape(-1, 1, 1)) & (dy.abs() < r.reshape(-1, 1, 1));
        var mask = where(isDisc.reshape(-1, 1, 1), disc, square).unsqueeze(1).to(float32);
        var images = mask * fg.reshape(-1, 3, 1, 1) + (1 - mask) * bg.reshape(-1, 3, 1, 1);
        var features = cat([fg, isDisc.to(float32).unsqueeze(1), cx.unsqueeze(1), cy.unsqueeze(1), r.unsqueeze(1)], 1) * 2 - 1;
        return (images, Project(features));
    }

    /// <summary>A fixed random projection to EmbedDim, L2-normalised like a CLIP embedding.</summary>
    private static Tensor Project(Tensor features)
    {
        var projection = randn([features.shape[1], EmbedDim], generator: new Generator(seed: 1234));
        return nn.functional.normalize(features.matmul(projection), dim: -1);
    }

    /// <summary>
    /// Writes <paramref name="shards"/> webdataset shards of <paramref name="perShard"/> samples
    /// (`{shard:D5}.tar` with `{shard:D5}{i:D4}.jpg/.txt`) and `img_emb/img_emb_{shard:D5}.npy`,
    /// deterministically from <paramref name="seed"/>.
    /// </summary>
    public static void WriteDataset(string folder, int shards, int perShard, int size, ulong seed = 0)
    {
        Directory.CreateDirectory(Path.Combine(folder, "img_emb"));
        var g = new Generator(seed);
        for (int s = 0; s < shards; s++)
        {
            using var scope = NewDisposeScope();
            var (images, embeds) = Batch(perShard, size, g);
            var pixels = (images * 255).round().clamp(0, 255).to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().data<byte>().ToArray();
            var captions = Captions(images, embeds);
            string tar = Path.Combine(folder, $"{s:D5}.tar");
            using (var stream = File.Create(tar))
            using (var writer = new System.Formats.Tar.TarWriter(stream, System.Formats.Tar.TarEntryFormat.Ustar))
            {
                int stride = size * size * 3;
                for (int i = 0; i < perShard; i++)
                {
                    string key = $"{s:D5}{i:D4}";
                    var png = ImageDecoder.EncodePng(new RgbImage(size, size, pixels[(i * stride)..((i + 1) * stride)]));
                    writer.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, key + ".png")
                        { DataStream = new MemoryStream(png) });
                    writer.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, key + ".txt")
                        { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(captions[i])) });
                }
            }
            using var npy = File.Create(Path.Combine(folder, "img_emb", $"img_emb_{s:D5}.npy"));
            Npy.Write(npy, [perShard, EmbedDim], embeds.contiguous().data<float>().ToArray());
        }
    }

    private static string[] Captions(Tensor images, Tensor embeds)
    {
        // A plain description (dominant colour words) for the logs and grids; the model never reads it.
        long n = images.shape[0];
        var result = new string[n];
        var centre = images[.., .., (int)(images.shape[2] / 2), (int)(images.shape[3] / 2)];
        for (int i = 0; i < n; i++)
        {
            var c = centre[i].data<float>().ToArray();
            result[i] = $"shape of colour ({c[0]:F2}, {c[1]:F2}, {c[2]:F2})";
        }
        return result;
    }
}
