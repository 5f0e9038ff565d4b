namespace Dalle2Sharp.Runtime;

/// <summary>
/// Where data and files live, in one place for the data pipeline and the trackers: a local path or
/// file://, http(s):// (Runtime/HttpStreams: timeouts, retries, Range resume), s3:// (S3Storage: the
/// AWS SDK, any S3-compatible store) and pipe:COMMAND (a shell command's stdout, as webdataset).
/// </summary>
public static class Storage
{
    public static bool IsHttp(string url) =>
        url.StartsWith("http://", StringComparison.Ordinal) || url.StartsWith("https://", StringComparison.Ordinal);

    public static bool IsS3(string url) => url.StartsWith("s3://", StringComparison.Ordinal);

    public static bool IsPipe(string url) => url.StartsWith("pipe:", StringComparison.Ordinal);

    public static bool IsRemote(string url) => IsHttp(url) || IsS3(url);

    /// <summary>A local path for a path or file:// URL (other URLs as they are).</summary>
    public static string LocalPath(string url) => url.StartsWith("file://", StringComparison.Ordinal) ? new Uri(url).LocalPath : url;

    /// <summary>Opens a file for reading, forward only for remote sources.</summary>
    public static Stream OpenRead(string url, IoTimeouts? timeouts = null)
    {
        timeouts ??= IoTimeouts.Default;
        if (IsPipe(url)) return new PipeStream(url["pipe:".Length..], timeouts.Stall);
        if (IsHttp(url)) return HttpStreams.Open(url, timeouts);
        if (IsS3(url)) return S3Storage.OpenRead(url, timeouts);
        return new FileStream(LocalPath(url), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    /// <summary>
    /// The names of the files directly in a folder whose names end in <paramref name="extension"/>: a
    /// local folder, an S3 prefix (listed as fsspec's s3fs does, delimiter "/"), or an http(s) folder
    /// through the index page its server publishes (python -m http.server, nginx autoindex).
    /// </summary>
    public static IReadOnlyList<string> List(string folderUrl, string extension, IoTimeouts? timeouts = null)
    {
        timeouts ??= IoTimeouts.Default;
        if (IsS3(folderUrl)) return S3Storage.List(folderUrl, timeouts).Where(n => n.EndsWith(extension, StringComparison.Ordinal)).ToList();
        if (IsHttp(folderUrl)) return HttpIndex.List(Folder(folderUrl), extension, timeouts);
        string local = LocalPath(folderUrl);
        if (!Directory.Exists(local)) throw new DirectoryNotFoundException($"folder {local} does not exist");
        return Directory.GetFiles(local, "*" + extension).Select(f => Path.GetFileName(f)!).ToList();
    }

    /// <summary>A file in a folder: URL folders joined with "/", local ones with the platform's separator.</summary>
    public static string Combine(string folderUrl, string name) =>
        IsRemote(folderUrl) ? Folder(folderUrl) + name : Path.Combine(LocalPath(folderUrl), name);

    private static string Folder(string url) => url.EndsWith('/') ? url : url + "/";

    /// <summary>
    /// Copies a remote (http(s) or s3) or local file to <paramref name="target"/> atomically, with progress
    /// lines and, when given, a check that its sha256 starts with <paramref name="sha256Prefix"/>.
    /// </summary>
    public static void Download(string url, string target, Action<string>? progress, IoTimeouts? timeouts = null, string? sha256Prefix = null,
                                IReadOnlyDictionary<string, string>? headers = null)
    {
        if (IsHttp(url)) HttpStreams.Download(url, target, progress, timeouts, sha256Prefix, headers);
        else
        {
            using var source = OpenRead(url, timeouts);
            HttpStreams.CopyChecked(source, url, target, progress, sha256Prefix, source.CanSeek ? source.Length : S3Storage.LengthOf(source));
        }
    }
}
