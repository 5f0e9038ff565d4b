using System.Collections.Concurrent;

namespace Dalle2Sharp.Data;

/// <summary>Kinds of bad data the loader skips (and counts) instead of stopping.</summary>
public enum DataIssueKind
{
    ShardUnreadable,
    TruncatedTar,
    CorruptImage,
    ImageTooLarge,
    MissingImage,
    MissingCaption,
    MissingEmbeddingFile,
    EmbeddingRowOutOfRange,
    ZeroEmbedding,
    BadKey,
}

/// <summary>
/// Counts every skipped sample or shard by kind and reports each with its shard and key, so bad data
/// never stops training and never passes silently. Thread-safe: loader workers share one.
/// </summary>
public sealed class DataIssues(Action<string>? warn = null)
{
    private readonly ConcurrentDictionary<DataIssueKind, long> _counts = new();
    private readonly Action<string> _warn = warn ?? (message => Console.Error.WriteLine($"warning: {message}"));

    /// <summary>
    /// Warnings printed per kind; beyond it issues are still counted (and logged with the metrics) but not
    /// printed, so that upstream's open-ended shard ranges (end_shard 9999999 with embeddings for a few
    /// shards) do not print millions of lines.
    /// </summary>
    public const int PrintedPerKind = 100;

    public void Report(DataIssueKind kind, string shard, string? key, string reason)
    {
        long count = _counts.AddOrUpdate(kind, 1, (_, c) => c + 1);
        if (count <= PrintedPerKind)
            _warn(key is null ? $"{Describe(kind)} in shard {shard}: {reason}" : $"{Describe(kind)} in shard {shard}, key {key}: {reason}");
        if (count == PrintedPerKind)
            _warn($"{PrintedPerKind} {Describe(kind)} warnings: further ones are counted (data {Name(kind)} in the metrics), not printed");
    }

    public long this[DataIssueKind kind] => _counts.TryGetValue(kind, out var c) ? c : 0;

    public long Total => _counts.Values.Sum();

    /// <summary>Counts by snake_case kind, for the metrics log.</summary>
    public IReadOnlyDictionary<string, long> Snapshot() =>
        Enum.GetValues<DataIssueKind>().ToDictionary(k => Name(k), k => this[k]);

    public static string Name(DataIssueKind kind) =>
        string.Concat(kind.ToString().Select((ch, i) =>
            char.IsUpper(ch) && i > 0 ? "_" + char.ToLowerInvariant(ch) : char.ToLowerInvariant(ch).ToString()));

    private static string Describe(DataIssueKind kind) => Name(kind).Replace('_', ' ');
}
