using System.IO.Compression;

namespace Dalle2Sharp.Tests.Clip;

/// <summary>
/// The small CLIP archive of tests/reference/make_clip_vectors.py, kept gzipped in the repository (1.7 MB
/// instead of 27 MB) and unpacked once into the test output folder (ignored by git).
/// </summary>
public static class ClipTestFiles
{
    public static string Vectors { get; } = Path.Combine(TestPaths.RepoRoot, "tests/Dalle2Sharp.Tests/Clip/Vectors");

    private static readonly Lazy<string> Unpacked = new(() =>
    {
        var packed = Path.Combine(Vectors, "ViT-Tiny.pt.gz");
        var target = Path.Combine(AppContext.BaseDirectory, "clip-vectors", "ViT-Tiny.pt");
        if (File.Exists(target) && File.GetLastWriteTimeUtc(target) >= File.GetLastWriteTimeUtc(packed)) return target;
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        Dalle2Sharp.Runtime.AtomicFile.Write(target, s =>
        {
            using var gz = new GZipStream(File.OpenRead(packed), CompressionMode.Decompress);
            gz.CopyTo(s);
        });
        return target;
    });

    /// <summary>The TorchScript archive (OpenAI's .pt layout), unpacked.</summary>
    public static string ViTTiny => Unpacked.Value;
}
