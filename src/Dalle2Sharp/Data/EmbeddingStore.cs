using System.Collections.Concurrent;
using System.Globalization;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Data;

/// <summary>
/// A folder of per-shard embedding files, `&lt;prefix&gt;_&lt;shard&gt;.npy` (clip-retrieval's layout after
/// reordering): the prefix and the shard number's zero-padding come from the files present, and row
/// i of shard s belongs to the sample whose key ends in i (its last index_width digits). A local
/// folder (or file://) is listed directly, an s3:// prefix with the S3 API, an http(s) folder through the
/// directory index its server publishes, as upstream's fsspec does (Runtime/Storage).
/// </summary>
public sealed class EmbeddingStore
{
    private readonly string _folder;
    private readonly string _prefix;
    private readonly int _width;
    private readonly Dictionary<long, string> _shards;
    private readonly ConcurrentDictionary<long, Lazy<NpyArray>> _cache = new();
    private readonly Runtime.IoTimeouts _timeouts;

    public EmbeddingStore(string folderUrl, Runtime.IoTimeouts? timeouts = null)
    {
        _timeouts = timeouts ?? Runtime.IoTimeouts.Default;
        _folder = folderUrl;
        IReadOnlyList<string> listed;
        try { listed = Storage.List(folderUrl, ".npy", _timeouts); }
        catch (Exception e) when (e is IOException or HttpRequestException or UnauthorizedAccessException)
        {
            throw new UserInputException($"embedding folder {Runtime.SafeUrl.Redact(folderUrl)} cannot be listed: {e.Message}", e);
        }
        var files = listed.Select(n => n[..^".npy".Length]).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new UserInputException($"embedding folder {Runtime.SafeUrl.Redact(folderUrl)} has no .npy files" +
                                         (Storage.IsHttp(folderUrl) ? " in its directory index (the server must list the folder)" : ""));
        var first = files[0];
        int underscore = first.LastIndexOf('_');
        if (underscore < 0) throw new UserInputException($"embedding file {first}.npy is not named <prefix>_<shard>.npy");
        _prefix = first[..underscore];
        _width = first.Length - underscore - 1;
        _shards = [];
        foreach (var name in files)
        {
            if (name.StartsWith(_prefix + "_", StringComparison.Ordinal) &&
                long.TryParse(name[(_prefix.Length + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var s))
                _shards.TryAdd(s, name + ".npy");
        }
    }

    public bool HasShard(long shard) => _shards.ContainsKey(shard);

    public string FileFor(long shard)
    {
        // The listed name when there is one: shard numbers wider than the padding (end_shard 9999999 with
        // shard_width 6) give names of mixed widths.
        string name = _shards.TryGetValue(shard, out var listed) ? listed
            : $"{_prefix}_{shard.ToString(CultureInfo.InvariantCulture).PadLeft(_width, '0')}.npy";
        return Storage.Combine(_folder, name);
    }

    /// <summary>The shard's array, read once and shared by the workers (a shard is read by one worker per epoch).</summary>
    public NpyArray Load(long shard) => _cache.GetOrAdd(shard, s => new Lazy<NpyArray>(() => Npy.ReadFile(FileFor(s), _timeouts))).Value;

    /// <summary>Forget a shard's array once its tar has been read.</summary>
    public void Release(long shard) => _cache.TryRemove(shard, out _);
}
