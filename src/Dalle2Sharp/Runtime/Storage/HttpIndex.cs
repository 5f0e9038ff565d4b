using System.Text.RegularExpressions;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// Lists an http(s) folder through the index page its server publishes (python -m http.server, nginx
/// autoindex, S3 website listings), as fsspec's HTTPFileSystem does: the links on the page, relative or
/// absolute, reduced to their last path segment.
/// </summary>
internal static partial class HttpIndex
{
    public static IReadOnlyList<string> List(string folder, string extension, IoTimeouts timeouts)
    {
        string html;
        using (var reader = new StreamReader(HttpStreams.Open(folder, timeouts))) html = reader.ReadToEnd();
        return Link().Matches(html)
            .Select(m => Uri.UnescapeDataString(m.Groups[1].Value.Split('/')[^1]))
            .Where(name => name.EndsWith(extension, StringComparison.Ordinal))
            .Distinct()
            .ToList();
    }

    [GeneratedRegex("""href\s*=\s*["']([^"'?#]+)["']""", RegexOptions.IgnoreCase)]
    private static partial Regex Link();
}
