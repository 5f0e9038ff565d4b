using System.Buffers.Binary;
using System.Text;
using Dalle2Sharp.Data;

namespace Dalle2Sharp.Tests.Data;

/// <summary>Crafted headers: sizes read from a file are checked before anything is allocated or reaches native code.</summary>
public class HostileInputTests
{
    /// <summary>A real JPEG whose SOF0 header is patched to claim <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static byte[] JpegClaiming(int width, int height)
    {
        var jpeg = ShardBuilder.Jpeg(3, 40, 30);
        for (int i = 2; i + 9 < jpeg.Length; i++)
        {
            if (jpeg[i] != 0xFF || jpeg[i + 1] is not (0xC0 or 0xC1 or 0xC2)) continue;
            BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(i + 5), (ushort)height);
            BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(i + 7), (ushort)width);
            return jpeg;
        }
        throw new InvalidOperationException("no SOF marker");
    }

    /// <summary>A PNG whose IHDR claims the size (CRC recomputed, so only the size is wrong).</summary>
    public static byte[] PngClaiming(int width, int height)
    {
        var png = ImageDecoder.EncodePng(new RgbImage(4, 4, new byte[48]));
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    [Theory]
    [InlineData("jpg", 65500, 65500)]
    [InlineData("png", 65500, 65500)]
    [InlineData("png", 1_000_000, 1_000_000)]
    [InlineData("jpg", 20000, 20000)]
    public void HugeHeadersAreRefusedBeforeDecoding(string format, int width, int height)
    {
        var bytes = format == "jpg" ? JpegClaiming(width, height) : PngClaiming(width, height);
        var e = Assert.Throws<ImageTooLargeException>(() => ImageDecoder.Decode(bytes));
        Assert.Contains("max_image_pixels", e.Message);
        // Without the limit the buffer size is still checked in 64 bits (65500² RGBA is 17 GB: no array, no native write).
        if ((long)width * height * 4 > Array.MaxLength)
            Assert.Throws<ImageTooLargeException>(() => ImageDecoder.Decode(bytes, maxPixels: 0));
    }

    [Fact]
    public void BombTruncatedAndOddSamplesAreDataIssuesWithShardAndKey()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 1, perShard: 6);
        var truncated = ShardBuilder.Jpeg(4);
        ShardBuilder.WriteTar(Path.Combine(dir.Path, "00000.tar"), Enumerable.Range(0, 6).SelectMany(i => new[]
        {
            ($"00000{i:D4}.jpg", i switch { 1 => JpegClaiming(65500, 65500), 2 => truncated[..(truncated.Length / 2)], 3 => PngClaiming(0, 5), _ => ShardBuilder.Jpeg(i) }),
            ($"00000{i:D4}.txt", "c"u8.ToArray()),
        }));
        var (batches, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 1));
        Assert.Equal(1, issues[DataIssueKind.ImageTooLarge]);
        Assert.Contains(warnings, w => w.Contains("00000.tar") && w.Contains("key 000000001") && w.Contains("decompression bomb"));
        Assert.Equal(2, issues[DataIssueKind.CorruptImage]);
        Assert.Equal(3, batches.Sum(b => b.Count));
    }

    [Theory]
    [InlineData("(-3, 8)", "non-negative integers")]
    [InlineData("(4611686018427387904, 8)", "overflows 64 bits")]
    [InlineData("(3000000000,)", "more than one array holds")]
    [InlineData("(100000, 768)", "data is short")]
    public void NpyShapesAreCheckedBeforeAllocating(string shape, string message)
    {
        string header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}";
        header += new string(' ', (64 - (10 + header.Length + 1) % 64) % 64) + "\n";
        var file = new MemoryStream();
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        file.Write(BitConverter.GetBytes((ushort)header.Length));
        file.Write(Encoding.Latin1.GetBytes(header));
        file.Write(new byte[64]);
        file.Position = 0;
        Assert.Contains(message, Assert.Throws<InvalidDataException>(() => Npy.Read(file)).Message);
        // The same from a stream that cannot tell its length (http, pipe): read in bounded chunks, then refused.
        var forward = new ForwardOnly(new MemoryStream(file.ToArray()));
        Assert.Throws<InvalidDataException>(() => Npy.Read(forward));
    }

    [Fact]
    public void NpyHeaderLengthIsBounded()
    {
        var file = new MemoryStream();
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0]);
        file.Write(BitConverter.GetBytes(uint.MaxValue));
        file.Position = 0;
        Assert.Contains("header claims", Assert.Throws<InvalidDataException>(() => Npy.Read(file)).Message);
    }

    [Fact]
    public void TarMemberClaimingGigabytesIsATruncatedShardNotAnAllocation()
    {
        using var dir = new TestPaths.TempDir();
        var (pattern, emb) = ShardBuilder.Dataset(dir.Path, shards: 1, perShard: 3);
        var tar = File.ReadAllBytes(Path.Combine(dir.Path, "00000.tar"));
        // Second header (after the first member's 512-byte header and its padded data): size field 8 GB.
        long firstSize = Convert.ToInt64(Encoding.ASCII.GetString(tar, 124, 11), 8);
        int second = 512 + (int)((firstSize + 511) / 512 * 512);
        Encoding.ASCII.GetBytes("77777777777\0").CopyTo(tar, second + 124);
        Encoding.ASCII.GetBytes("        ").CopyTo(tar, second + 148);
        int sum = tar.Skip(second).Take(512).Sum(b => b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(tar, second + 148);
        File.WriteAllBytes(Path.Combine(dir.Path, "00000.tar"), tar);
        var (_, warnings, issues) = DataTestHelpers.ReadAll(DataTestHelpers.Config(pattern, emb, 1));
        Assert.Equal(1, issues[DataIssueKind.TruncatedTar] + issues[DataIssueKind.ShardUnreadable]);
        Assert.Contains(warnings, w => w.Contains("00000.tar"));
    }

    private sealed class ForwardOnly(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
