using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tests;

/// <summary>Reads the upstream reference vectors in ../shared/reference/vectors.</summary>
public static class Vectors
{
    public static JsonNode Json(string name) => JsonNode.Parse(File.ReadAllText(TestPaths.SharedFile("reference", "vectors", name)))!;

    public static double[] Doubles(JsonNode? node) => node!.AsArray().Select(v => (double)v!).ToArray();

    public static float[] RawFloats(string name)
    {
        var bytes = File.ReadAllBytes(TestPaths.SharedFile("reference", "vectors", name));
        var floats = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, floats, 0, bytes.Length);
        return floats;
    }

    /// <summary>Asserts |a − e| ≤ rel·|e| + abs for every element, naming the first that differs.</summary>
    public static void AssertClose(IReadOnlyList<double> expected, IReadOnlyList<double> actual, double rel, double abs = 0, string what = "")
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            double tol = rel * Math.Abs(expected[i]) + abs;
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (tolerance {tol:G3})");
        }
    }
}
