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
        long headerLength = major switch
        {
            1 => reader.ReadUInt16(),
            2 or 3 => reader.ReadUInt32(),
            _ => throw new InvalidDataException($".npy format version {major} is not supported (1–3 are)"),
        };
        if (headerLength > MaxHeaderBytes)
            throw new InvalidDataException($".npy header claims {headerLength} bytes (at most {MaxHeaderBytes} are accepted)");
        var headerBytes = reader.ReadBytes((int)headerLength);
        if (headerBytes.Length < headerLength) throw new InvalidDataException($".npy header is short: {headerBytes.Length} of {headerLength} bytes");
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);
        var descr = Descr().Match(header);
        var order = FortranOrder().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !order.Success || !shapeMatch.Success) throw new InvalidDataException($"unreadable .npy header: {header.Trim()}");
        if (order.Groups[1].Value == "True") throw new InvalidDataException(".npy array is in Fortran order; only C order is supported");
        string type = descr.Groups[1].Value;
        int itemSize = type switch
        {
            "<f4" or "=f4" or "f4" => 4,
            "<f2" or "=f2" or "f2" => 2,
            _ => throw new InvalidDataException($".npy dtype {type} is not supported (float16 and float32 little-endian are)"),
        };
        var shape = ParseShape(shapeMatch.Groups[1].Value);
        // Every size is checked before anything is allocated: a damaged or hostile header must not make us
        // allocate what the file does not hold.
        long count = 1;
        foreach (var dim in shape)
        {
            try { count = checked(count * dim); }
            catch (OverflowException) { throw new InvalidDataException($".npy shape ({string.Join(", ", shape)}) overflows 64 bits"); }
        }
        if (count > Array.MaxLength)
            throw new InvalidDataException($".npy shape ({string.Join(", ", shape)}) has {count} elements, " +
                                           $"more than one array holds ({Array.MaxLength})");
        long bytes = count * itemSize;
        if (bytes > Array.MaxLength)
            throw new InvalidDataException($".npy data of {bytes} bytes is larger than one read supports ({Array.MaxLength}); split the file");
        if (stream.CanSeek && stream.Length - stream.Position < bytes)
            throw new InvalidDataException($".npy data is short: the shape ({string.Join(", ", shape)}) needs {bytes} bytes, " +
                                           $"the file holds {stream.Length - stream.Position}");
        var raw = stream.CanSeek ? new byte[bytes] : ReadUpTo(reader.BaseStream, bytes);
        if (stream.CanSeek) ReadExactly(reader, raw, bytes);
        var data = new float[count];
        if (itemSize == 4) Buffer.BlockCopy(raw, 0, data, 0, raw.Length);
        else
        {
            var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(raw);
            for (int i = 0; i < data.Length; i++) data[i] = (float)halves[i];
        }
        return new NpyArray(shape, data);
    }

    public static NpyArray ReadFile(string path, Runtime.IoTimeouts? timeouts = null)
    {
        using var stream = Runtime.Storage.OpenRead(path, timeouts);
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

    /// <summary>Largest header accepted (NumPy's own headers are a few hundred bytes).</summary>
    public const long MaxHeaderBytes = 1 << 20;

    private static long[] ParseShape(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var shape = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!long.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new InvalidDataException($".npy shape ({text}) is not a list of non-negative integers");
        return shape;
    }

    /// <summary>Reads exactly <paramref name="bytes"/> from a stream of unknown length in bounded chunks,
    /// so a lying header allocates at most what arrives.</summary>
    private static byte[] ReadUpTo(Stream stream, long bytes)
    {
        const int chunk = 64 << 20;
        using var buffer = new MemoryStream((int)Math.Min(bytes, chunk));
        var block = new byte[(int)Math.Min(bytes, chunk)];
        while (buffer.Length < bytes)
        {
            int n = stream.Read(block, 0, (int)Math.Min(block.Length, bytes - buffer.Length));
            if (n == 0) throw new InvalidDataException($".npy data is short: {buffer.Length} of {bytes} bytes");
            buffer.Write(block, 0, n);
        }
        return buffer.ToArray();
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
