using System.Collections.Concurrent;
using System.Globalization;

namespace Dalle2Sharp.Data;

/// <summary>
/// A folder of per-shard embedding files, `&lt;prefix&gt;_&lt;shard&gt;.npy` (clip-retrieval's layout after
/// reordering): the prefix and the shard number's zero-padding come from the files present, and row
/// i of shard s belongs to the sample whose key ends in i (its last index_width digits).
/// </summary>
public sealed class EmbeddingStore
{
    private readonly string _folder;
    private readonly string _prefix;
    private readonly int _width;
    private readonly HashSet<long> _shards;
    private readonly ConcurrentDictionary<long, Lazy<NpyArray>> _cache = new();

    public EmbeddingStore(string folderUrl)
    {
        _folder = folderUrl.StartsWith("file://", StringComparison.Ordinal) ? new Uri(folderUrl).LocalPath : folderUrl;
        if (_folder.StartsWith("http://") || _folder.StartsWith("https://"))
            throw new UserInputException($"embedding folder {folderUrl}: http folders cannot be listed yet; copy the .npy files to a local folder");
        if (!Directory.Exists(_folder)) throw new UserInputException($"embedding folder {folderUrl} does not exist");
        var files = Directory.GetFiles(_folder, "*.npy").Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new UserInputException($"embedding folder {folderUrl} has no .npy files");
        var first = files[0]!;
        int underscore = first.LastIndexOf('_');
        if (underscore < 0) throw new UserInputException($"embedding file {first}.npy is not named <prefix>_<shard>.npy");
        _prefix = first[..underscore];
        _width = first.Length - underscore - 1;
        _shards = [];
        foreach (var name in files)
        {
            if (name!.StartsWith(_prefix + "_", StringComparison.Ordinal) && long.TryParse(name[(_prefix.Length + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var s))
                _shards.Add(s);
        }
    }

    public bool HasShard(long shard) => _shards.Contains(shard);

    public string FileFor(long shard) => Path.Combine(_folder, $"{_prefix}_{shard.ToString(CultureInfo.InvariantCulture).PadLeft(_width, '0')}.npy");

    /// <summary>The shard's array, read once and shared by the workers (a shard is read by one worker per epoch).</summary>
    public NpyArray Load(long shard) => _cache.GetOrAdd(shard, s => new Lazy<NpyArray>(() => Npy.ReadFile(FileFor(s)))).Value;

    /// <summary>Forget a shard's array once its tar has been read.</summary>
    public void Release(long shard) => _cache.TryRemove(shard, out _);
}
