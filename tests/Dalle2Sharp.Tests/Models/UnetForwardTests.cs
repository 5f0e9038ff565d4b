using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

public class UnetForwardTests
{
    [Fact]
    public void AnalyticWeightsReproduceUpstreamWeightCheck()
    {
        using var unet = new Unet(TestUnets.DecoderCast());
        AnalyticWeights.Apply(unet);
        var check = Vectors.Json("test_unet_forward.json")["analytic"]!["weight_check"]!.AsObject();
        var sd = unet.state_dict();
        int compared = 0;
        foreach (var (key, values) in check)
        {
            Assert.True(sd.ContainsKey(key), $"upstream's {key} is not in our state_dict");
            compared++;
            var first = sd[key].flatten()[..3].data<float>().Select(f => (double)f).ToArray();
            Vectors.AssertClose(Vectors.Doubles(values), first, rel: 1e-6, what: key);
        }
        Assert.True(compared >= 5 && compared == check.Count, $"compared {compared} of {check.Count} keys");
    }

    [Fact]
    public void AnalyticForwardMatchesUpstreamOutput()
    {
        using var scope = NewDisposeScope();
        using var unet = new Unet(TestUnets.DecoderCast());
        AnalyticWeights.Apply(unet);
        unet.eval();
        var x = tensor(Vectors.RawFloats("fwd_input_x.f32")).reshape(2, 3, 64, 64);
        var embed = tensor(Vectors.RawFloats("fwd_input_image_embed.f32")).reshape(2, 768);
        var time = tensor(new long[] { 3, 7 });
        Tensor output;
        using (no_grad()) output = unet.forward(x, time, new UnetConditioning(ImageEmbed: embed));
        Assert.Equal(new long[] { 2, 6, 64, 64 }, output.shape);
        var expected = tensor(Vectors.RawFloats("fwd_output_analytic.f32")).reshape(2, 6, 64, 64);
        double maxDiff = (output - expected).abs().max().item<float>();
        Assert.True(maxDiff <= 1e-4, $"max |ours − upstream| = {maxDiff}");
        var stats = Vectors.Json("test_unet_forward.json")["analytic"]!["output"]!;
        Assert.Equal((double)stats["mean"]!, output.to(float64).mean().item<double>(), 1e-5);
        Assert.Equal((double)stats["std_unbiased"]!, output.to(float64).std().item<double>(), 1e-4);
    }
}
