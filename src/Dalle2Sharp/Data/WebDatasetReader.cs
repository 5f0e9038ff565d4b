using System.Formats.Tar;
using System.IO.Compression;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Data;

/// <summary>One webdataset sample: its key and its files by lower-cased extension ("jpg", "txt", "npy").</summary>
public sealed record WebDatasetSample(string Key, IReadOnlyDictionary<string, byte[]> Files);

/// <summary>
/// Streams the samples of a tar shard without extracting it. Files are grouped by webdataset's key
/// rule (the path up to the first dot of the file name; extension = the rest, lower-cased);
/// consecutive files with the same key form one sample.
/// </summary>
public static class WebDatasetReader
{
    /// <summary>Largest tar member read into memory (an image, caption or embedding of one sample).</summary>
    public const long MaxMemberBytes = 1L << 30;

    public static IEnumerable<WebDatasetSample> Read(Stream tar, string shard, DataIssues issues)
    {
        Stream decompressed;
        try { decompressed = Decompressed(tar); }
        catch (IOException e)
        {
            issues.Report(DataIssueKind.ShardUnreadable, shard, null, e.Message);
            tar.Dispose();
            yield break;
        }
        using var reader = new TarReader(decompressed, leaveOpen: false);
        string? key = null;
        int entries = 0;
        var files = new Dictionary<string, byte[]>();
        while (true)
        {
            TarEntry? entry;
            byte[]? content = null;
            try
            {
                entry = reader.GetNextEntry();
                if (entry is not null && entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile && entry.DataStream is not null)
                {
                    // The size comes from the tar header: checked before it is allocated.
                    if (entry.Length is < 0 or > MaxMemberBytes)
                        throw new InvalidDataException($"member {entry.Name} claims {entry.Length} bytes (at most {MaxMemberBytes} are read)");
                    content = new byte[entry.Length];
                    entry.DataStream.ReadExactly(content);
                }
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or IOException)
            {
                if (entries == 0) issues.Report(DataIssueKind.ShardUnreadable, shard, null, e.Message);
                else issues.Report(DataIssueKind.TruncatedTar, shard, null, $"{e.Message} (samples after this point are lost)");
                break;
            }
            entries++;
            if (entry is null) break;
            if (content is null) continue;

            var (entryKey, extension) = SplitName(entry.Name);
            if (entryKey is null) continue; // hidden files and names without an extension carry no sample
            if (key is not null && entryKey != key)
            {
                yield return new WebDatasetSample(key, files);
                files = new Dictionary<string, byte[]>();
            }
            key = entryKey;
            files[extension!] = content;
        }
        if (key is not null && files.Count > 0) yield return new WebDatasetSample(key, files);
    }

    /// <summary>A gzip-compressed tar (magic 1f 8b; webdataset accepts them whatever the name) is decompressed on the fly.</summary>
    private static Stream Decompressed(Stream stream)
    {
        var head = new byte[2];
        int n = stream.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        Stream whole = new PrefixedStream(head[..n], stream);
        return n == 2 && head[0] == 0x1f && head[1] == 0x8b ? new GZipStream(whole, CompressionMode.Decompress) : whole;
    }

    /// <summary>Bytes already read from a forward-only stream, followed by the rest of it.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream rest) : ForwardOnlyStream
    {
        private int _position;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_position < prefix.Length)
            {
                int n = Math.Min(buffer.Length, prefix.Length - _position);
                prefix.AsSpan(_position, n).CopyTo(buffer);
                _position += n;
                return n;
            }
            return rest.Read(buffer);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) rest.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>"dir/001045945.jpg" → ("dir/001045945", "jpg"); "a/b.seg.png" → ("a/b", "seg.png").</summary>
    public static (string? Key, string? Extension) SplitName(string name)
    {
        int slash = name.LastIndexOf('/');
        int dot = name.IndexOf('.', slash + 1);
        if (dot <= slash + 1 || dot == name.Length - 1) return (null, null);
        return (name[..dot], name[(dot + 1)..].ToLowerInvariant());
    }
}
