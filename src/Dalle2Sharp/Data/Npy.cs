using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Dalle2Sharp.Data;

/// <summary>A float array read from a .npy file (always returned as float32, C order).</summary>
public sealed record NpyArray(long[] Shape, float[] Data)
{
    public long Rows => Shape.Length == 0 ? 1 : Shape[0];
    public long RowLength => Shape.Length <= 1 ? 1 : Shape[1..].Aggregate(1L, (a, b) => a * b);
    public ReadOnlySpan<float> Row(long i) => Data.AsSpan((int)(i * RowLength), (int)RowLength);
}

/// <summary>
/// NumPy .npy files, format versions 1–3, little-endian float16 / float32 in C order — what
/// clip-retrieval writes. Written by hand: no NuGet package here reads .npy.
/// </summary>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static NpyArray Read(Stream stream)
    {
        using var reader = new BinaryReader(stream, Encoding.Latin1, leaveOpen: true);
        var magic = reader.ReadBytes(6);
        if (!magic.AsSpan().SequenceEqual(Magic)) throw new InvalidDataException("not a .npy file (bad magic)");
        byte major = reader.ReadByte();
        reader.ReadByte();
        int headerLength = major switch
        {
            1 => reader.ReadUInt16(),
            2 or 3 => checked((int)reader.ReadUInt32()),
            _ => throw new InvalidDataException($".npy format version {major} is not supported (1–3 are)"),
        };
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(reader.ReadBytes(headerLength));
        var descr = Descr().Match(header);
        var order = FortranOrder().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !order.Success || !shapeMatch.Success) throw new InvalidDataException($"unreadable .npy header: {header.Trim()}");
        if (order.Groups[1].Value == "True") throw new InvalidDataException(".npy array is in Fortran order; only C order is supported");
        var shape = shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        string type = descr.Groups[1].Value;
        var data = new float[count];
        switch (type)
        {
            case "<f4" or "=f4" or "f4":
                ReadExactly(reader, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), count * 4);
                break;
            case "<f2" or "=f2" or "f2":
                var halves = new Half[count];
                ReadExactly(reader, System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()), count * 2);
                for (long i = 0; i < count; i++) data[i] = (float)halves[i];
                break;
            default:
                throw new InvalidDataException($".npy dtype {type} is not supported (float16 and float32 little-endian are)");
        }
        return new NpyArray(shape, data);
    }

    public static NpyArray ReadFile(string path)
    {
        using var stream = ShardStreams.Open(path);
        return Read(stream);
    }

    /// <summary>Writes a float32 (or float16) C-order array, format version 1.</summary>
    public static void Write(Stream stream, long[] shape, ReadOnlySpan<float> data, bool float16 = false)
    {
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        string header = $"{{'descr': '{(float16 ? "<f2" : "<f4")}', 'fortran_order': False, 'shape': {shapeText}, }}";
        int total = 10 + header.Length + 1;
        header += new string(' ', (64 - total % 64) % 64) + "\n";
        stream.Write(Magic);
        stream.WriteByte(1);
        stream.WriteByte(0);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.Latin1.GetBytes(header));
        if (float16)
        {
            var halves = new Half[data.Length];
            for (int i = 0; i < data.Length; i++) halves[i] = (Half)data[i];
            stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()));
        }
        else stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
    }

    private static void ReadExactly(BinaryReader reader, Span<byte> target, long expected)
    {
        int read = reader.BaseStream.ReadAtLeast(target, target.Length, throwOnEndOfStream: false);
        if (read < target.Length) throw new InvalidDataException($".npy data is short: {read} of {expected} bytes");
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']+)'")]
    private static partial Regex Descr();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranOrder();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
