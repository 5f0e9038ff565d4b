using Dalle2Sharp.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Evaluation;

public class FidInceptionTests
{
    [Fact]
    public void StructureMatchesInceptionV3With1008ClassesAndNoAuxHead()
    {
        using var net = new FidInceptionV3();
        // torchvision's inception_v3 has 27,161,264 parameters; without AuxLogits (3,326,696) and with
        // the TF graph's 1008 classes instead of 1000 (+8·2048 + 8): 23,850,960.
        Assert.Equal(23_850_960, net.parameters().Sum(p => p.numel()));
        var keys = net.state_dict().Keys.ToList();
        Assert.Equal("Conv2d_1a_3x3.conv.weight", keys[0]);
        Assert.Contains("Mixed_7c.branch3x3dbl_3b.bn.running_var", keys);
        Assert.Contains("Mixed_6e.branch7x7dbl_5.conv.weight", keys);
        Assert.Equal(new long[] { 1008, 2048 }, net.state_dict()["fc.weight"].shape);
        Assert.Equal(new long[] { 192, 768, 1, 1 }, net.state_dict()["Mixed_6b.branch_pool.conv.weight"].shape);
        Assert.DoesNotContain(keys, k => k.StartsWith("AuxLogits"));
    }

    [Fact]
    public void KeysAndShapesArePytorchFids()
    {
        // fid-inception-weight-keys.json lists the state_dict of pytorch-fid's model (torchvision's
        // Inception3 with the FIDInception blocks), into which pt_inception-2015-12-05-6726825d.pth loads.
        var listed = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Evaluation", "fid-inception-weight-keys.json")))!["keys"]!.AsArray()
            .Select(e => (Key: (string)e![0]!, Shape: string.Join("x", e[1]!.AsArray().Select(d => (long)d!)))).ToList();
        using var net = new FidInceptionV3();
        var ours = net.state_dict().Select(kv => (Key: kv.Key, Shape: string.Join("x", kv.Value.shape))).ToList();
        Assert.Equal(566, listed.Count);
        // Loading goes by name, so order does not matter (TorchSharp lists buffers after parameters).
        Assert.Equal(listed.OrderBy(k => k.Key, StringComparer.Ordinal), ours.OrderBy(k => k.Key, StringComparer.Ordinal));
    }

    /// <summary>
    /// Against torch-fidelity's FeatureExtractorInceptionV3 (what torchmetrics runs): every tap for two
    /// 37×45 uint8 images, TF1 resize included, with weights drawn by the recipe in
    /// Vectors/make_fid_inception_reference.py.
    /// </summary>
    [Fact]
    public void TapsEqualTorchFidelitysExtractor()
    {
        using var scope = NewDisposeScope();
        var keys = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Evaluation", "fid-inception-weight-keys.json")))!["keys"]!.AsArray();
        var reference = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Evaluation", "Vectors", "fid-inception-reference.json")))!["taps"]!;
        using var net = new FidInceptionV3();
        var state = net.state_dict();
        var g = new Generator(seed: 31);
        using (no_grad())
        {
            foreach (var entry in keys)
            {
                string key = (string)entry![0]!;
                long[] shape = entry[1]!.AsArray().Select(d => (long)d!).ToArray();
                if (key.EndsWith("num_batches_tracked")) { state[key].zero_(); continue; }
                double fanIn = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                var (lo, hi) = key.EndsWith("conv.weight") || key == "fc.weight" ? (-1 / Math.Sqrt(fanIn), 1 / Math.Sqrt(fanIn))
                    : key.EndsWith("bn.weight") || key.EndsWith("running_var") ? (0.5, 1.5) : (-0.05, 0.05);
                state[key].copy_(empty(shape).uniform_(lo, hi, generator: g));
            }
        }
        var images = randint(0, 256, [2, 3, 37, 45], generator: g).to(ScalarType.Byte);
        Dictionary<string, Tensor> taps;
        using (no_grad()) taps = net.forward(images);
        foreach (var tap in new[] { "64", "192", "768", "2048", "logits_unbiased" })
        {
            var expected = tensor(reference[tap]!.AsArray().SelectMany(row => row!.AsArray().Select(v => (float)v!)).ToArray()).reshape(2, -1);
            Assert.Equal(expected.shape, taps[tap].shape);
            double worst = (taps[tap] - expected).abs().max().item<float>();
            double scale = expected.abs().max().item<float>();
            Assert.True(worst <= 1e-4 * scale + 1e-6, $"tap {tap}: max |Δ| {worst} (values up to {scale})");
        }
    }

    [Fact]
    public void ForwardGivesEveryFeatureTap()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var net = new FidInceptionV3();
        var images = randint(0, 256, [2, 3, 64, 64], generator: new Generator(seed: 1)).to(ScalarType.Byte);
        Dictionary<string, Tensor> taps;
        using (no_grad()) taps = net.forward(images);
        Assert.Equal(new long[] { 2, 64 }, taps["64"].shape);
        Assert.Equal(new long[] { 2, 192 }, taps["192"].shape);
        Assert.Equal(new long[] { 2, 768 }, taps["768"].shape);
        Assert.Equal(new long[] { 2, 2048 }, taps["2048"].shape);
        Assert.Equal(new long[] { 2, 1008 }, taps["logits_unbiased"].shape);
        Assert.True(taps["2048"].isfinite().all().item<bool>());
    }
}

public class Tf1ResizeTests
{
    [Fact]
    public void ResizeReadsAtIOverScaleWithoutHalfPixelCentres()
    {
        // 1-D ramp 0..3 (4 px) → 8 px: sources 0, .5, 1, 1.5, 2, 2.5, 3, 3.5 → values 0 .5 1 1.5 2 2.5 3 3 (edge clamped).
        var x = TorchSharp.torch.arange(4, dtype: TorchSharp.torch.ScalarType.Float32).reshape(1, 1, 1, 4).expand(1, 1, 2, 4);
        var y = Dalle2Sharp.Evaluation.FidInceptionV3.ResizeBilinearTf1(x, 2, 8);
        Assert.Equal(new float[] { 0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3 }, y[0, 0, 0].data<float>().ToArray());
        // Downscaling 8 → 4 samples every second pixel (no averaging), unlike an antialiased resize.
        var z = Dalle2Sharp.Evaluation.FidInceptionV3.ResizeBilinearTf1(TorchSharp.torch.arange(8, dtype: TorchSharp.torch.ScalarType.Float32).reshape(1, 1, 1, 8), 1, 4);
        Assert.Equal(new float[] { 0, 2, 4, 6 }, z[0, 0, 0].data<float>().ToArray());
    }
}
