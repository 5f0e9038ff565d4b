using System.Text.Json;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

/// <summary>
/// Every Unet and Decoder option against numbers from running DALLE2-pytorch 1.15.6 itself
/// (tests/reference/make_upstream_option_vectors.py): the same constructor arguments, the analytic
/// weights on each unet, formula inputs. Tolerance: 1e-4 of the output's scale for forward passes
/// (float32 through ~50 layers with different kernels and summation orders), 1e-5 relative for losses.
/// </summary>
public class UpstreamOptionTests
{
    private static readonly Lazy<JsonObject> File_ = new(() => JsonNode.Parse(File.ReadAllText(
        Path.Combine(TestPaths.RepoRoot, "tests", "Dalle2Sharp.Tests", "Models", "Vectors", "upstream_options.json")))!.AsObject());

    private static JsonObject Case(string name) => File_.Value["cases"]![name]!.AsObject();

    /// <summary>The generator's formula tensors: element i = sin(0.37·i + s), or 0.5 + 0.5·that for images in [0, 1].</summary>
    public static Tensor Formula(JsonNode spec)
    {
        var shape = spec["shape"]!.AsArray().Select(v => (long)v!).ToArray();
        double s = (double)spec["s"]!;
        bool unit = ((string)spec["formula"]!).StartsWith("0.5+0.5*");
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[n];
        for (long i = 0; i < n; i++)
        {
            double v = Math.Sin(0.37 * i + s);
            values[i] = (float)(unit ? 0.5 + 0.5 * v : v);
        }
        return tensor(values).reshape(shape);
    }

    private static Tensor Expected(JsonNode node) =>
        tensor(node["values"]!.AsArray().Select(v => (float)(double)v!).ToArray()).reshape(node["shape"]!.AsArray().Select(v => (long)v!).ToArray());

    private static void AssertClose(JsonNode expected, Tensor actual, string what, double tolerance = 1e-4)
    {
        var e = Expected(expected);
        Assert.Equal(e.shape, actual.shape);
        double scale = Math.Max(1.0, e.abs().max().item<float>());
        double diff = (actual.to(float32) - e).abs().max().item<float>();
        Assert.True(diff <= tolerance * scale, $"{what}: max |ours − upstream| = {diff:G4} (scale {scale:G3})");
    }

    private static T Bind<T>(JsonNode node, string path) where T : ConfigSection
    {
        var binder = new ConfigBinder();
        using var doc = JsonDocument.Parse(node.ToJsonString());
        var section = (T)binder.BindSection(typeof(T), doc.RootElement, path)!;
        Assert.True(binder.Errors.Count == 0, string.Join("; ", binder.Errors));
        return section;
    }

    private static Unet BuildUnet(JsonObject c, string kwargsKey = "effective_unet_kwargs")
    {
        var unet = new Unet(Bind<UnetConfig>(c[kwargsKey]!, "unet"));
        if (c["state_dict_keys"] is JsonArray keys)
        {
            var upstream = keys.Select(k => (string)k!.AsArray()[0]!).ToList();
            var ours = unet.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
            Assert.Equal(upstream.Count, ours.Count);
            Assert.Equal(upstream, ours);
        }
        AnalyticWeights.Apply(unet);
        unet.eval();
        return unet;
    }

    private static Decoder BuildDecoder(JsonObject c)
    {
        var json = c["decoder_kwargs"]!.DeepClone().AsObject();
        json["unets"] = c["unet_kwargs"]!.DeepClone();
        foreach (var key in json.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList()) json.Remove(key);
        var decoder = new Decoder(Bind<DecoderConfig>(json, "decoder"));
        for (int i = 0; i < decoder.NumUnets; i++) AnalyticWeights.Apply(decoder, $"unets.{i}.");
        decoder.eval();
        return decoder;
    }

    private static Tensor Times(JsonNode node) => tensor(node.AsArray().Select(v => (long)v!).ToArray());

    public static TheoryData<string> ForwardCases => new(File_.Value["cases"]!.AsObject()
        .Where(kv => kv.Key.StartsWith("01_") || kv.Key.StartsWith("05_")).Select(kv => kv.Key));

    [Theory, MemberData(nameof(ForwardCases))]
    public void UnetForwardEqualsUpstream(string name)
    {
        using var scope = NewDisposeScope();
        var c = Case(name);
        using var unet = BuildUnet(c);
        var inputs = c["inputs"]!;
        using var _ = no_grad();
        var output = unet.forward(Formula(inputs["x"]!), Times(inputs["time"]!), new UnetConditioning(ImageEmbed: Formula(inputs["image_embed"]!)));
        AssertClose(c["output"]!, output, name);
    }

    [Fact]
    public void SelfConditionedForwardEqualsUpstream()
    {
        using var scope = NewDisposeScope();
        var c = Case("03_self_cond_forward");
        using var unet = BuildUnet(c);
        var i = c["inputs"]!;
        var cond = new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!));
        using var _ = no_grad();
        AssertClose(c["output"]!, unet.forward(Formula(i["x"]!), Times(i["time"]!), cond with { SelfCond = Formula(i["self_cond"]!) }), "with self_cond");
        AssertClose(c["output_no_self_cond"]!, unet.forward(Formula(i["x"]!), Times(i["time"]!), cond), "without self_cond");
    }

    [Theory]
    [InlineData("04_text_max_text_len_8")]
    [InlineData("04_text_max_text_len_4")]
    public void TextConditionedForwardEqualsUpstream(string name)
    {
        using var scope = NewDisposeScope();
        var c = Case(name);
        using var unet = BuildUnet(c);
        var i = c["inputs"]!;
        var text = Formula(i["text_encodings"]!);
        text[1, 3..] = zeros(2, text.shape[2]);   // the generator's "then": row 1, tokens 3 and 4 all zeros (masked)
        var x = Formula(i["x"]!);
        var t = Times(i["time"]!);
        var cond = new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!), TextEncodings: text);
        var o = c["outputs"]!;
        using var _ = no_grad();
        AssertClose(o["forward"]!, unet.forward(x, t, cond), "forward");
        AssertClose(o["forward_image_and_text_drop_1"]!, unet.forward(x, t, cond, 1.0, 1.0), "both dropped");
        AssertClose(o["forward_text_drop_1"]!, unet.forward(x, t, cond, 0.0, 1.0), "text dropped");
        AssertClose(o["forward_image_drop_1"]!, unet.forward(x, t, cond, 1.0, 0.0), "image dropped");
        AssertClose(o["forward_no_text_encodings"]!, unet.forward(x, t, cond with { TextEncodings = null }), "no text encodings");
        AssertClose(o["forward_with_cond_scale_3"]!, unet.ForwardWithCondScale(x, t, cond, 3.0), "cond_scale 3");
    }

    [Fact]
    public void LowresConditionedForwardEqualsUpstream()
    {
        using var scope = NewDisposeScope();
        var c = Case("06_lowres_unet_forward");
        var i = c["inputs"]!;
        foreach (var (variant, value) in c["variants"]!.AsObject())
        {
            var v = value!.AsObject();
            using var unet = BuildUnet(v);
            var levels = v["lowres_noise_level"] is JsonArray l ? Times(l) : null;
            using var _ = no_grad();
            var output = unet.forward(Formula(i["x"]!), Times(i["time"]!),
                new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!), LowresCondImg: Formula(i["lowres_cond_img"]!), LowresNoiseLevel: levels));
            AssertClose(v["output"]!, output, variant);
        }
    }

    private static void AssertPMeanVariance(JsonNode expected, (Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor XStart) ours, string what)
    {
        AssertClose(expected["model_mean"]!, ours.Mean, $"{what} model_mean");
        AssertClose(expected["x_start"]!, ours.XStart, $"{what} x_start");
        // Variances are [b, 1, 1, 1] from the schedule or per pixel when learned: compared broadcast to the image.
        foreach (var (key, actual) in new[] { ("posterior_variance", ours.Variance), ("posterior_log_variance", ours.LogVariance) })
        {
            var e = Expected(expected[key]!).expand(ours.Mean.shape);
            double diff = (actual.expand(ours.Mean.shape) - e).abs().max().item<float>();
            double scale = Math.Max(1e-3, e.abs().max().item<float>());
            Assert.True(diff <= 1e-4 * scale, $"{what} {key}: max |ours − upstream| = {diff:G4} (scale {scale:G3})");
        }
    }

    /// <summary>Upstream's decoder.p_mean_variance(unet, pmv_x, pmv_t, …): the unet's output read as the decoder reads it.</summary>
    private static void AssertUnetPosterior(JsonNode expected, Decoder decoder, JsonNode inputs, UnetConditioning cond, string what)
    {
        var x = Formula(inputs["pmv_x"]!);
        var t = Times(inputs["pmv_t"]!);
        AssertPMeanVariance(expected, decoder.Denoisers[0].PMeanVariance(x, t, decoder.Unet(1).forward(x, t, cond), clipDenoised: true), what);
    }

    private static void AssertLoss(double expected, Tensor loss, string what) =>
        Assert.True(Math.Abs(loss.item<float>() - expected) <= 1e-5 * Math.Abs(expected) + 1e-7, $"{what}: ours {loss.item<float>():R}, upstream {expected:R}");

    [Theory]
    [InlineData("02_decoder_eps")]
    [InlineData("02_decoder_predict_x_start")]
    [InlineData("02_decoder_predict_v")]
    [InlineData("08_p2_gamma_0.5")]
    [InlineData("08_p2_gamma_1.0")]
    public void DecoderLossAndPosteriorEqualUpstream(string name)
    {
        using var scope = NewDisposeScope();
        var c = Case(name);
        using var decoder = BuildDecoder(c);
        var i = c["inputs"]!;
        var cond = new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!));
        using var _ = no_grad();
        AssertLoss((double)c["loss"]!, decoder.PLosses(1, Formula(i["x_start"]!), Times(i["times"]!), cond, Formula(i["noise"]!)), name);
        if (c["p_mean_variance"] is { } pmv) AssertUnetPosterior(pmv, decoder, i, cond, name);
    }

    [Theory]
    [InlineData("07_learned_variance_constrain_frac_True")]
    [InlineData("07_learned_variance_constrain_frac_False")]
    [InlineData("07_learned_variance_constrain_frac_True_predict_x_start")]
    public void LearnedVarianceLossAndPosteriorEqualUpstream(string name)
    {
        using var scope = NewDisposeScope();
        var c = Case(name);
        using var decoder = BuildDecoder(c);
        var i = c["inputs"]!;
        var cond = new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!));
        using var _ = no_grad();
        foreach (var (key, value) in c["losses"]!.AsObject())
        {
            var times = tensor(key["times_".Length..].Split('_').Select(long.Parse).ToArray());
            AssertLoss((double)value!["loss_total"]!, decoder.PLosses(1, Formula(i["x_start"]!), times, cond, Formula(i["noise"]!)), $"{name} {key}");
        }
        AssertUnetPosterior(c["p_mean_variance"]!, decoder, i, cond, name);
    }

    [Theory]
    [InlineData("eps")]
    [InlineData("predict_x_start")]
    public void SelfConditionedLossEqualsUpstreamOnBothBranches(string variant)
    {
        using var scope = NewDisposeScope();
        var c = Case("03_self_cond_decoder_loss");
        var info = c["losses"]![variant]!.AsObject();
        using var decoder = BuildDecoder(info["info"]!.AsObject());
        var i = c["inputs"]!;
        var cond = new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!));
        // Our branch draw is rand(1) < 0.5 from the generator: seeds whose first draw takes / skips it.
        ulong Seed(bool take) => Enumerable.Range(0, 100).Select(v => (ulong)v)
            .First(v => rand(1, generator: new Generator(seed: v)).item<float>() < 0.5 == take);
        using var _ = no_grad();
        foreach (var (key, take) in new[] { ("random_0.0_self_cond_used", true), ("random_0.9_self_cond_skipped", false) })
            AssertLoss((double)info[key]!, decoder.PLosses(1, Formula(i["x_start"]!), Times(i["times"]!), cond, Formula(i["noise"]!), new Generator(seed: Seed(take))), $"{variant} {key}");
    }

    [Fact]
    public void DynamicThresholdingIsPerImageAsUpstream()
    {
        using var scope = NewDisposeScope();
        var c = Case("09_dynamic_threshold");
        using var decoder = BuildDecoder(c);
        var i = c["inputs"]!;
        var output = Formula(i["model_output"]!) * tensor(new float[] { 3.0f, 1.5f }).reshape(2, 1, 1, 1);
        var x = Formula(i["pmv_x"]!);
        var t = Times(i["pmv_t"]!);
        using var _ = no_grad();
        AssertClose(c["dynamic_threshold_of_model_output"]!, decoder.Denoisers[0].Threshold(output), "dynamic_threshold");
        AssertPMeanVariance(c["p_mean_variance"]!, decoder.Denoisers[0].PMeanVariance(x, t, output, clipDenoised: true), "given output");
        var cond = new UnetConditioning(ImageEmbed: Formula(i["image_embed"]!));
        AssertUnetPosterior(c["p_mean_variance_from_unet"]!, decoder, i, cond, "unet output");
    }

    [Theory]
    [InlineData("11_cascade_use_noise_for_lowres_cond_False")]
    [InlineData("11_cascade_use_noise_for_lowres_cond_True")]
    public void CascadeLossesEqualUpstreamForEachUnet(string name)
    {
        using var scope = NewDisposeScope();
        var c = Case(name);
        using var decoder = BuildDecoder(c);
        var i = c["inputs"]!;
        var embed = Formula(i["image_embed"]!);
        var times = Times(i["times"]!);
        var levels = i["lowres_noise_level"] is JsonArray l ? Times(l) : null;
        using var _ = no_grad();
        AssertLoss((double)c["losses"]!["unet1_loss"]!, decoder.PLosses(1, Formula(i["x_start16"]!), times, new UnetConditioning(ImageEmbed: embed), Formula(i["noise16"]!)), "unet 1");
        AssertLoss((double)c["losses"]!["unet2_loss"]!, decoder.PLosses(2, Formula(i["x_start32"]!), times,
            new UnetConditioning(ImageEmbed: embed, LowresCondImg: Formula(i["lowres32"]!), LowresNoiseLevel: levels), Formula(i["noise32"]!)), "unet 2");
    }

    [Fact]
    public void LowresNoiseAugmentationIsUpstreamsNoiseImage()
    {
        using var scope = NewDisposeScope();
        var c = Case("06_lowres_conditioner");
        var o = c["outputs"]!;
        var conditioner = new Dalle2Sharp.Diffusion.LowresConditioner(downsampleFirst: true, useBlur: false, useNoise: true, blurProb: 0.5, (0.6, 0.6), (3, 3));
        var image = Formula(c["inputs"]!["img32"]!);
        var noised = conditioner.NoiseImage(image, tensor(new long[] { 200, 999 }), Expected(o["noise_image_drawn_noise"]!));
        AssertClose(o["noise_image_levels_200_999"]!, noised, "noise_image");
        Assert.True(noised.max().item<float>() > 1 || noised.min().item<float>() < 0, "upstream does not clamp the noised image");
        AssertClose(o["down16_nearest"]!, Dalle2Sharp.Diffusion.LowresConditioner.ResizeNearest(image, 16, (0, 1)), "nearest 32 → 16");
    }

    [Theory]
    [InlineData("12_sample_ddpm_seed_1234")]
    [InlineData("12_sample_ddpm_learned_variance_seed_1234")]
    [InlineData("12_sample_ddim_eta_0_seed_1234")]
    [InlineData("12_sample_ddim_eta_1_seed_1234")]
    public void SamplesForAFixedSeedEqualUpstreams(string name)
    {
        using var scope = NewDisposeScope();
        // Our generator replays torch.manual_seed's stream (the first draws are in the file).
        var check = File_.Value["randn_check"]!["values"]!.AsArray().Select(v => (double)v!).ToArray();
        var draws = randn([2, 3, 16, 16], generator: new Generator(seed: 1234)).flatten()[..16].data<float>().Select(v => (double)v).ToArray();
        Vectors.AssertClose(check, draws, rel: 1e-6, abs: 1e-7, what: "randn after manual_seed(1234)");

        var c = Case(name);
        using var decoder = BuildDecoder(c);
        var images = decoder.Sample(Formula(c["inputs"]!["image_embed"]!), options: new SampleOptions { Generator = new Generator(seed: (ulong)(long)c["seed"]!) });
        // Upstream returns the last step unclamped; we clamp sampled images to [0, 1].
        var expected = Expected(c["output"]!).clamp(0, 1);
        double diff = (images - expected).abs().max().item<float>();
        Assert.True(diff <= 1e-4, $"{name}: max |ours − upstream| = {diff:G4}");
    }

    [Theory]
    [InlineData("10_ddim_eta_1_injected_noise")]
    [InlineData("10_ddpm_injected_noise")]
    public void SamplingLoopsEqualUpstreamOnTheSameNoise(string name)
    {
        // Upstream's randn replaced by formula tensors (the k-th draw: sin(0.37·i + s_k)): the whole loop —
        // time grid, coefficients, clipping, every noise term — must give upstream's image.
        using var scope = NewDisposeScope();
        var c = Case(name);
        using var decoder = BuildDecoder(c);
        var draws = c["random_calls"]!.AsArray().Select(call => Formula(new JsonObject
        {
            ["shape"] = call!["shape"]!.DeepClone(), ["s"] = (double)call["s"]!, ["formula"] = "sin(0.37*i+s)",
        })).ToList();
        int next = 0;
        Tensor Draw(long[] shape) => draws[next++];
        var cond = new UnetConditioning(ImageEmbed: Formula(c["inputs"]!["image_embed"]!));
        Dalle2Sharp.Diffusion.GuidedModel model = (x, t, _) => decoder.Unet(1).forward(x, t, cond);
        var d = decoder.Denoisers[0];
        long[] shape = [2, 3, 16, 16];
        using var _ = no_grad();
        var image = name.Contains("ddim")
            ? Dalle2Sharp.Diffusion.Samplers.Ddim(d, model, shape, 5, 1.0, clipDenoised: true, selfCond: false, CPU, null, Draw)
            : Dalle2Sharp.Diffusion.Samplers.Ddpm(d, model, shape, clipDenoised: true, selfCond: false, CPU, null, Draw);
        Assert.Equal(draws.Count, next);                                      // the same number of draws as upstream
        var unnormalized = (image + 1) * 0.5;                                  // upstream's sample returns (x + 1) / 2, unclamped
        AssertClose(c["output"]!, unnormalized, name);
    }
}
