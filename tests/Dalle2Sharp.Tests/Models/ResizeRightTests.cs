using System.Text.Json.Nodes;
using Dalle2Sharp.Models;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

public class ResizeRightTests
{
    /// <summary>
    /// resize-right's resize as upstream's resize_image_to calls it (tests/reference/make_resize_right_vectors.py):
    /// downscales with antialiasing, upscales, zero padding at the borders. Within 1e-5 (float32, other summation order).
    /// </summary>
    [Fact]
    public void ResizeEqualsResizeRight()
    {
        using var scope = NewDisposeScope();
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests", "Dalle2Sharp.Tests", "Models", "Vectors", "resize_right.json")))!;
        var cases = file["cases"]!.AsArray();
        Assert.Equal(4, cases.Count);
        foreach (var c in cases)
        {
            var input = UpstreamOptionTests.Formula(c!["input"]!);
            int target = (int)c["target"]!;
            var output = ResizeRight.Resize(input, target).clamp(0, 1);
            var expected = tensor(c["output"]!["values"]!.AsArray().Select(v => (float)(double)v!).ToArray())
                .reshape(c["output"]!["shape"]!.AsArray().Select(v => (long)v!).ToArray());
            Assert.Equal(expected.shape, output.shape);
            double diff = (output - expected).abs().max().item<float>();
            Assert.True(diff <= 1e-5, $"{input.shape[^1]} → {target}: max |ours − resize-right| = {diff:G3}");
        }
    }
}
