using Dalle2Sharp.Tests.Servers;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using SkiaSharp;

namespace Dalle2Sharp.Tests.Data;

public class SourceTests
{
    [Fact]
    public void PipeSourceReadsTheCommandsOutput()
    {
        using var dir = new TestPaths.TempDir();
        var (_, emb) = ShardBuilder.Dataset(dir.Path, shards: 2, perShard: 3);
        var config = DataTestHelpers.Config($"pipe:cat {dir.Path}/{{}}.tar", emb, 2);
        var (batches, warnings, _) = DataTestHelpers.ReadAll(config);
        Assert.Empty(warnings);
        Assert.Equal(6, batches.Sum(b => b.Count));
    }

    [Fact]
    public void FailingPipeCommandIsReportedWithItsStderr()
    {
        using var dir = new TestPaths.TempDir();
        var (_, emb) = ShardBuilder.Dataset(dir.Path, shards: 1, perShard: 3);
        var config = DataTestHelpers.Config($"pipe:cat {dir.Path}/missing-{{}}.tar", emb, 1);
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(config);
        Assert.Empty(batches);
        Assert.Equal(1, issues[DataIssueKind.ShardUnreadable]);
        var warning = Assert.Single(warnings);
        Assert.Contains("pipe command failed (exit 1)", warning);
        Assert.Contains("No such file", warning);
    }

    [Fact]
    public void HttpSourceStreamsFromALocalServer()
    {
        using var dir = new TestPaths.TempDir();
        var (_, emb) = ShardBuilder.Dataset(dir.Path, shards: 2, perShard: 3);
        using var server = new LocalFileServer(dir.Path);
        var config = DataTestHelpers.Config(server.Url + "{}.tar", emb, 3);
        File.Copy(Path.Combine(emb, "img_emb_00000.npy"), Path.Combine(emb, "img_emb_00002.npy"));
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(config);
        Assert.Equal(6, batches.Sum(b => b.Count));
        Assert.Equal(1, issues[DataIssueKind.ShardUnreadable]);   // 00002.tar: 404
        Assert.Contains(warnings, w => w.Contains("00002.tar") && w.Contains("404"));
        Assert.Equal(3, server.Requests);                          // 404s are not retried
    }

    [Fact]
    public void HttpEmbeddingFolderIsListedThroughItsIndexPage()
    {
        using var dir = new TestPaths.TempDir();
        ShardBuilder.Dataset(dir.Path, shards: 3, perShard: 4);
        string url;
        using (var server = new LocalFileServer(dir.Path))
        {
            url = server.Url + "img_emb";
            var config = DataTestHelpers.Config(server.Url + "{}.tar", url, 3);
            var (batches, warnings, _) = DataTestHelpers.ReadAll(config);
            Assert.Empty(warnings);
            Assert.Equal(12, batches.Sum(b => b.Count));
            foreach (var batch in batches)
                for (int i = 0; i < batch.Count; i++)
                {
                    // Row i of shard s was written as (s, i, 1, …): the key's shard and index must match it.
                    string key = batch.Keys[i];
                    Assert.Equal(int.Parse(key[..5]), batch.ImageEmbeddings![i, 0].item<float>());
                    Assert.Equal(int.Parse(key[5..]), batch.ImageEmbeddings![i, 1].item<float>());
                }
        }
        Assert.Throws<UserInputException>(() => new EmbeddingStore(url));   // the server is gone
    }
}

public class DecodeTests
{
    /// <summary>Inserts an EXIF APP1 segment with the given orientation right after the JPEG's SOI marker.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        byte[] tiff = [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (byte)orientation, 0, 0, 0, 0, 0, 0, 0];
        byte[] payload = [.. "Exif\0\0"u8.ToArray(), .. tiff];
        int length = payload.Length + 2;
        return [0xff, 0xd8, 0xff, 0xe1, (byte)(length >> 8), (byte)length, .. payload, .. jpeg[2..]];
    }

    private static byte[] HalfRedHalfBlue(int w, int h)
    {
        var px = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * 3;
                if (x < w / 2) px[i] = 255; else px[i + 2] = 255;
            }
        return ImageDecoder.EncodeJpeg(new RgbImage(w, h, px), 95);
    }

    [Fact]
    public void ExifOrientationIsApplied()
    {
        var plain = ImageDecoder.Decode(HalfRedHalfBlue(40, 20));
        Assert.Equal((40, 20), (plain.Width, plain.Height));
        // Orientation 6: shown rotated 90° clockwise, so the stored left (red) half is on top.
        var rotated = ImageDecoder.Decode(WithExifOrientation(HalfRedHalfBlue(40, 20), 6));
        Assert.Equal((20, 40), (rotated.Width, rotated.Height));
        Assert.True(rotated.Pixels[(5 * 20 + 10) * 3] > 200 && rotated.Pixels[(5 * 20 + 10) * 3 + 2] < 50, "top should be red");
        Assert.True(rotated.Pixels[(35 * 20 + 10) * 3 + 2] > 200, "bottom should be blue");
        // Orientation 3: rotated 180°, red on the right.
        var flipped = ImageDecoder.Decode(WithExifOrientation(HalfRedHalfBlue(40, 20), 3));
        Assert.True(flipped.Pixels[(10 * 40 + 35) * 3] > 200);
    }

    [Fact]
    public void GreyAndAlphaImagesBecomeRgb()
    {
        using (var grey = new SKBitmap(new SKImageInfo(8, 8, SKColorType.Gray8)))
        {
            grey.Erase(new SKColor(90, 90, 90));
            using var data = grey.Encode(SKEncodedImageFormat.Jpeg, 95);
            var img = ImageDecoder.Decode(data.ToArray());
            Assert.Equal(8 * 8 * 3, img.Pixels.Length);
            Assert.InRange(img.Pixels[0], 85, 95);
            Assert.Equal(img.Pixels[0], img.Pixels[1]);
        }
        using (var rgba = new SKBitmap(new SKImageInfo(4, 4, SKColorType.Rgba8888, SKAlphaType.Unpremul)))
        {
            rgba.Erase(new SKColor(200, 100, 50, 128));
            using var data = rgba.Encode(SKEncodedImageFormat.Png, 100);
            var img = ImageDecoder.Decode(data.ToArray());
            // PIL's convert("RGB") drops alpha without compositing: the colour stays.
            Assert.Equal(new byte[] { 200, 100, 50 }, img.Pixels[..3]);
        }
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Png)]
    [InlineData(SKEncodedImageFormat.Webp)]
    public void PngAndWebpDecodeAndTakeTheReducedPath(SKEncodedImageFormat format)
    {
        // A 96×64 gradient: red runs along x, green along y.
        using var bitmap = new SKBitmap(new SKImageInfo(96, 64, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 96; x++) bitmap.SetPixel(x, y, new SKColor((byte)(x * 255 / 95), (byte)(y * 255 / 63), 40));
        using var data = bitmap.Encode(format, 100);
        var encoded = data.ToArray();
        var image = ImageDecoder.Decode(encoded);
        Assert.Equal((96, 64), (image.Width, image.Height));
        Assert.InRange(image.Pixels[(10 * 96 + 48) * 3], 120, 136);
        // Through the transforms with a reduced decode (a PNG decodes full size, a WebP may scale):
        // the same crop gives nearly the same pixels as a full decode.
        var p = new PreprocessingConfig();
        p.Steps.Add(new ResizeConfig { Size = new[] { 16, 24 } });
        p.Steps.Add(new ToTensorConfig());
        var reduced = new ImageTransforms(p, reducedDecode: true).Apply(encoded);
        var full = new ImageTransforms(p, reducedDecode: false).Apply(encoded);
        Assert.Equal(new long[] { 3, 16, 24 }, reduced.shape);
        Assert.InRange((reduced - full).abs().mean().item<float>(), 0, 0.02);
    }

    [Fact]
    public void CmykJpegBecomesRgb()
    {
        // 16×8 CMYK JPEG written by Pillow 9.4 (Adobe APP14, inverted CMYK): left half cyan
        // (255, 0, 0, 0), right half red (0, 255, 255, 0); PIL's convert("RGB") gives (0, 255, 255) and (255, 0, 0).
        var jpeg = Convert.FromBase64String("/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBAQDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoKCgYICwwLCgwJCgoK/8AAFAgACAAQBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwD+f+v38r9/K/fyv7/K/gDr+AOiv//Z");
        var img = ImageDecoder.Decode(jpeg);
        Assert.Equal((16, 8), (img.Width, img.Height));
        byte[] Pixel(int x, int y) => img.Pixels.AsSpan((y * 16 + x) * 3, 3).ToArray();
        Assert.All(Pixel(2, 4).Zip(new byte[] { 0, 255, 255 }), p => Assert.InRange(Math.Abs(p.First - p.Second), 0, 12));
        Assert.All(Pixel(13, 4).Zip(new byte[] { 255, 0, 0 }), p => Assert.InRange(Math.Abs(p.First - p.Second), 0, 12));
    }

    [Fact]
    public void CorruptImageThrowsInvalidData() =>
        Assert.Throws<InvalidDataException>(() => ImageDecoder.Decode([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 1]));
}

public class NpyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ReadsFormatVersions(int version)
    {
        string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        header += new string(' ', 64 - (header.Length + (version == 1 ? 10 : 12) + 1) % 64) + "\n";
        using var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)version, 0]);
        if (version == 1) ms.Write(BitConverter.GetBytes((ushort)header.Length));
        else ms.Write(BitConverter.GetBytes((uint)header.Length));
        ms.Write(System.Text.Encoding.ASCII.GetBytes(header));
        foreach (var f in new float[] { 1, 2, 3, 4, 5, 6 }) ms.Write(BitConverter.GetBytes(f));
        ms.Position = 0;
        var array = Npy.Read(ms);
        Assert.Equal(new long[] { 2, 3 }, array.Shape);
        Assert.Equal(new float[] { 4, 5, 6 }, array.Row(1).ToArray());
    }

    [Fact]
    public void Float16RoundTripsAndShortDataIsAnError()
    {
        using var ms = new MemoryStream();
        Npy.Write(ms, [2, 2], [0.5f, -1.25f, 3f, 1024f], float16: true);
        ms.Position = 0;
        Assert.Equal(new float[] { 0.5f, -1.25f, 3f, 1024f }, Npy.Read(ms).Data);
        var bytes = ms.ToArray();
        Assert.Throws<InvalidDataException>(() => Npy.Read(new MemoryStream(bytes[..^2])));
    }
}
