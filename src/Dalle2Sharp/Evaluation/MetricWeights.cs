using Dalle2Sharp.Config;

namespace Dalle2Sharp.Evaluation;

/// <summary>
/// The weight files the configured metrics need, where they are looked for (evaluate.weights_dir,
/// $DALLE2_WEIGHTS_DIR, ~/.cache/dalle2sharp/weights) and where to get them. Checked before training
/// starts, so a missing file is reported at once rather than at the first evaluation hours later;
/// a file that is missing but downloadable is fetched into the folder first — from its publisher, or
/// from a mirror ($DALLE2_WEIGHTS_MIRROR: a URL laid out as the folder is) for machines without
/// access to GitHub and download.pytorch.org.
/// </summary>
public sealed class MetricWeights
{
    public const string InceptionFile = "pt_inception-2015-12-05-6726825d.pth";
    public const string InceptionUrl = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";

    private static readonly Dictionary<string, (string File, string Url)> Backbones = new()
    {
        ["vgg"] = ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
        ["alex"] = ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
        ["squeeze"] = ("squeezenet1_1-b8a52dc0.pth", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"),
    };

    public string Folder { get; }

    private readonly string? _mirror;
    private readonly IReadOnlyDictionary<string, string>? _knownSha256;

    /// <param name="knownSha256">sha256 (or a prefix) per file name, checked on download instead of the prefix a name carries.</param>
    public MetricWeights(EvaluateConfig config, string? mirror = null, IReadOnlyDictionary<string, string>? knownSha256 = null)
    {
        _knownSha256 = knownSha256;
        Folder = config.WeightsDir
            ?? Environment.GetEnvironmentVariable("DALLE2_WEIGHTS_DIR")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "dalle2sharp", "weights");
        _mirror = (mirror ?? Environment.GetEnvironmentVariable("DALLE2_WEIGHTS_MIRROR"))?.TrimEnd('/');
    }

    public string Inception => Path.Combine(Folder, InceptionFile);
    public string LpipsBackbone(string net) => Path.Combine(Folder, Backbones[net].File);
    public string LpipsHeads(string net) => Path.Combine(Folder, "lpips", "v0.1", $"{net}.pth");

    /// <summary>The (path, url) of every file the configured metrics need.</summary>
    public IReadOnlyList<(string Path, string Url)> Required(EvaluateConfig config)
    {
        var files = new List<(string, string)>();
        if (config.FID is not null || config.IS is not null || config.KID is not null) files.Add((Inception, InceptionUrl));
        if (config.LPIPS is { } lpips)
        {
            files.Add((LpipsBackbone(lpips.NetType), Backbones[lpips.NetType].Url));
            files.Add((LpipsHeads(lpips.NetType),
                $"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{lpips.NetType}.pth"));
        }
        return _mirror is null
            ? files
            : files.Select(f => (f.Item1, $"{_mirror}/{Path.GetRelativePath(Folder, f.Item1).Replace('\\', '/')}")).ToList();
    }

    /// <summary>
    /// The sha256 prefix a downloaded file must have: the one its name carries, as torchvision's and
    /// pytorch-fid's do (vgg16-397923af.pth, pt_inception-…-6726825d.pth); the LPIPS heads' names carry
    /// none and no digest is published for them, so they are checked by loading only.
    /// </summary>
    public string? ExpectedSha256(string path)
    {
        string name = Path.GetFileName(path);
        if (_knownSha256 is not null && _knownSha256.TryGetValue(name, out var known)) return known;
        var match = System.Text.RegularExpressions.Regex.Match(name, @"-([0-9a-f]{8,64})\.pth$");
        return match.Success ? match.Groups[1].Value : null;
    }

    /// <summary>
    /// Downloads what is missing when possible (streamed to disk with progress, bounded connect and stall
    /// waits, no limit on the whole transfer, hash-checked: a damaged file is removed and named); throws
    /// naming every file still missing and where to get it.
    /// </summary>
    public void EnsureAvailable(EvaluateConfig config, Action<string>? print = null, TimeSpan? timeout = null)
    {
        var missing = new List<string>();
        var timeouts = timeout is { } t ? new Runtime.IoTimeouts(t, t) : Runtime.IoTimeouts.Default;
        foreach (var (path, url) in Required(config).Where(f => !File.Exists(f.Path)))
        {
            try
            {
                print?.Invoke($"downloading {Runtime.SafeUrl.Redact(url)} → {path} …");
                Runtime.HttpStreams.Download(url, path, print, timeouts, ExpectedSha256(path));
            }
            catch (InvalidDataException e)
            {
                missing.Add($"{path}: {e.Message}");
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                missing.Add($"{path} (get it from {url}: {e.Message})");
            }
        }
        if (missing.Count > 0)
            throw new UserInputException("evaluation needs weight files that are missing and could not be downloaded: " + string.Join("; ", missing) +
                                         ". Put them there, set evaluate.weights_dir or DALLE2_WEIGHTS_DIR " +
                                         "(or DALLE2_WEIGHTS_MIRROR to download from a mirror), " +
                                         "or remove the metrics from the evaluate section.");
    }
}
