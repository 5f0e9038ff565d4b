using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

public class DecoderLossTests
{
    /// <summary>The upstream test config's decoder (T = 10, cosine, l2, learned variance), without condition dropout.</summary>
    public static DecoderConfig TestDecoderConfig() => new()
    {
        Unets = [TestUnets.TestConfig()], ImageSizes = [64], Timesteps = 10, LossType = "l2",
        BetaSchedule = new ScalarOrList<string>(["cosine"]), LearnedVariance = true, ImageCondDropProb = 0, TextCondDropProb = 0,
    };

    private static (Tensor X, Tensor Embed, Tensor Noise) Inputs()
    {
        var x = tensor(Vectors.RawFloats("fwd_input_x.f32")).reshape(2, 3, 64, 64);
        var embed = tensor(Vectors.RawFloats("fwd_input_image_embed.f32")).reshape(2, 768);
        var noise = tensor(Enumerable.Range(0, 2 * 3 * 64 * 64).Select(i => (float)(Math.Sqrt(3) * AnalyticWeights.R(i, 3))).ToArray()).reshape(2, 3, 64, 64);
        return (x, embed, noise);
    }

    [Fact]
    public void LearnedVarianceLossEqualsUpstream()
    {
        using var scope = NewDisposeScope();
        using var decoder = new Decoder(TestDecoderConfig());
        AnalyticWeights.Apply(decoder, "unets.0.");
        decoder.eval();
        var (x, embed, noise) = Inputs();
        var times = tensor(new long[] { 3, 7 });
        var reference = Vectors.Json("test_unet_forward.json")["decoder_T10_analytic"]!;
        using var _ = no_grad();
        var total = decoder.PLosses(1, (x + 1) / 2, times, new UnetConditioning(ImageEmbed: embed), noise).item<float>();
        Assert.Equal((double)reference["loss_total"]!, total, 1e-4);

        // The simple part alone: MSE between the ε prediction and the noise.
        var xNoisy = decoder.Denoisers[0].Scheduler.QSample(x, times, noise);
        var output = decoder.Unet(1).forward(xNoisy, times, new UnetConditioning(ImageEmbed: embed));
        var simple = nn.functional.mse_loss(output[.., ..3], noise).item<float>();
        Assert.Equal((double)reference["loss_simple"]!, simple, 1e-4);
        Assert.Equal((double)reference["q_sample_x_noisy"]!["mean"]!, xNoisy.to(float64).mean().item<double>(), 1e-5);
        // The VLB term (0.001 × vb) is small next to the simple loss: check it on its own to 1 %.
        double expectedVb = (double)reference["loss_total"]! - (double)reference["loss_simple"]!;
        Assert.True(Math.Abs((total - simple) - expectedVb) <= 0.01 * expectedVb, $"vb term {total - simple}, upstream {expectedVb}");
    }

    [Fact]
    public void PMeanVarianceEqualsUpstream()
    {
        using var scope = NewDisposeScope();
        using var decoder = new Decoder(TestDecoderConfig());
        AnalyticWeights.Apply(decoder, "unets.0.");
        decoder.eval();
        var (x, embed, _) = Inputs();
        var times = tensor(new long[] { 3, 7 });
        using var _ = no_grad();
        var output = decoder.Unet(1).forward(x, times, new UnetConditioning(ImageEmbed: embed));
        var (mean, variance, logVariance, x0) = decoder.Denoisers[0].PMeanVariance(x, times, output, clipDenoised: true);
        var reference = Vectors.Json("test_unet_forward.json")["decoder_T10_analytic"]!["p_mean_variance"]!;
        foreach (var (name, value) in new[] { ("model_mean", mean), ("posterior_variance", variance), ("posterior_log_variance", logVariance), ("x_start", x0) })
        {
            var stats = reference[name]!;
            Assert.Equal((double)stats["mean"]!, value.to(float64).mean().item<double>(), 1e-5);
            Assert.Equal((double)stats["std_unbiased"]!, value.to(float64).std().item<double>(), 1e-4);
            Vectors.AssertClose(Vectors.Doubles(stats["first10"]), value.flatten()[..10].data<float>().Select(f => (double)f).ToArray(), rel: 0, abs: 1e-4, what: name);
        }
    }
}
