using System.Collections.Concurrent;
using System.Globalization;

namespace Dalle2Sharp.Data;

/// <summary>
/// A folder of per-shard embedding files, `&lt;prefix&gt;_&lt;shard&gt;.npy` (clip-retrieval's layout after
/// reordering): the prefix and the shard number's zero-padding come from the files present, and row
/// i of shard s belongs to the sample whose key ends in i (its last index_width digits). A local
/// folder (or file://) is listed directly; an http(s) folder through the directory index its server
/// publishes (python -m http.server, nginx autoindex, S3 website listings), as upstream's fsspec does.
/// </summary>
public sealed partial class EmbeddingStore
{
    private readonly string _folder;
    private readonly bool _remote;
    private readonly string _prefix;
    private readonly int _width;
    private readonly HashSet<long> _shards;
    private readonly ConcurrentDictionary<long, Lazy<NpyArray>> _cache = new();
    private readonly Runtime.IoTimeouts _timeouts;

    public EmbeddingStore(string folderUrl, Runtime.IoTimeouts? timeouts = null)
    {
        _timeouts = timeouts ?? Runtime.IoTimeouts.Default;
        _folder = folderUrl.StartsWith("file://", StringComparison.Ordinal) ? new Uri(folderUrl).LocalPath : folderUrl;
        _remote = _folder.StartsWith("http://", StringComparison.Ordinal) || _folder.StartsWith("https://", StringComparison.Ordinal);
        if (_remote && !_folder.EndsWith('/')) _folder += "/";
        var files = (_remote ? ListRemote(_folder, _timeouts) : ListLocal(_folder)).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new UserInputException($"embedding folder {folderUrl} has no .npy files" +
                                         (_remote ? " in its directory index (the server must list the folder)" : ""));
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
                _shards.Add(s);
        }
    }

    private static IEnumerable<string> ListLocal(string folder)
    {
        if (!Directory.Exists(folder)) throw new UserInputException($"embedding folder {folder} does not exist");
        return Directory.GetFiles(folder, "*.npy").Select(f => Path.GetFileNameWithoutExtension(f)!);
    }

    /// <summary>The .npy names linked from the folder's index page (hrefs, relative or absolute, last path segment).</summary>
    private static IEnumerable<string> ListRemote(string folder, Runtime.IoTimeouts timeouts)
    {
        string html;
        try
        {
            using var reader = new StreamReader(ShardStreams.Open(folder, timeouts));
            html = reader.ReadToEnd();
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            throw new UserInputException($"embedding folder {folder} cannot be listed: {e.Message}", e);
        }
        return NpyLink().Matches(html)
            .Select(m => Uri.UnescapeDataString(m.Groups[1].Value.Split('/')[^1]))
            .Select(name => name[..^".npy".Length])
            .Distinct();
    }

    [System.Text.RegularExpressions.GeneratedRegex("""href\s*=\s*["']([^"'?#]+\.npy)["']""", System.Text.RegularExpressions.RegexOptions.IgnoreCase)]
    private static partial System.Text.RegularExpressions.Regex NpyLink();

    public bool HasShard(long shard) => _shards.Contains(shard);

    public string FileFor(long shard)
    {
        string name = $"{_prefix}_{shard.ToString(CultureInfo.InvariantCulture).PadLeft(_width, '0')}.npy";
        return _remote ? _folder + name : Path.Combine(_folder, name);
    }

    /// <summary>The shard's array, read once and shared by the workers (a shard is read by one worker per epoch).</summary>
    public NpyArray Load(long shard) => _cache.GetOrAdd(shard, s => new Lazy<NpyArray>(() => Npy.ReadFile(FileFor(s), _timeouts))).Value;

    /// <summary>Forget a shard's array once its tar has been read.</summary>
    public void Release(long shard) => _cache.TryRemove(shard, out _);
}
