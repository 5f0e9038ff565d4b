using Dalle2Sharp.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Diffusion;

public class NoiseSchedulerTests
{
    public static TheoryData<string> Schedules => new()
    {
        "cosine_T1000", "linear_T1000", "quadratic_T1000", "jsd_T1000", "sigmoid_T1000",
        "cosine_T10", "linear_T10", "quadratic_T10", "jsd_T10", "sigmoid_T10",
    };

    [Theory, MemberData(nameof(Schedules))]
    public void BetasEqualUpstream(string key)
    {
        var entry = Vectors.Json("beta_schedules.json")["schedules"]![key]!;
        using var scheduler = new NoiseScheduler((string)entry["schedule"]!, (int)entry["timesteps"]!, "l2");
        var betas = scheduler.Buffer("betas").data<float>().Select(f => (double)f).ToArray();
        Vectors.AssertClose(Vectors.Doubles(entry["betas_f32"]), betas, rel: 1e-6, what: key);
    }

    [Theory]
    [InlineData("cosine_T10_buffers.json", 10)]
    [InlineData("cosine_T1000_buffers.json", 1000)]
    public void AllThirteenBuffersEqualUpstream(string file, int timesteps)
    {
        var buffers = Vectors.Json(file)["buffers"]!;
        using var scheduler = new NoiseScheduler("cosine", timesteps, "l2");
        foreach (var name in NoiseScheduler.BufferNames)
        {
            var ours = scheduler.Buffer(name);
            Assert.Equal(ScalarType.Float32, ours.dtype);
            // Relative 1e-6, with an absolute floor for values that cancel to ~0 (float32 rounding of the last step).
            Vectors.AssertClose(Vectors.Doubles(buffers[name]!["f32"]), ours.data<float>().Select(f => (double)f).ToArray(), rel: 1e-6, abs: 1e-7, what: name);
        }
    }

    [Fact]
    public void BuffersAreInStateDictInUpstreamOrder()
    {
        using var scheduler = new NoiseScheduler("cosine", 10, "l2");
        Assert.Equal(NoiseScheduler.BufferNames, scheduler.state_dict().Keys);
    }

    [Fact]
    public void P2WeightFollowsFormula()
    {
        using var scheduler = new NoiseScheduler("linear", 10, "l2", p2LossWeightGamma: 0.5, p2LossWeightK: 1);
        var ac = scheduler.Buffer("alphas_cumprod").data<float>().ToArray();
        var w = scheduler.Buffer("p2_loss_weight").data<float>().ToArray();
        for (int i = 0; i < 10; i++)
            Assert.Equal(Math.Pow(1 + ac[i] / (1.0 - ac[i]), -0.5), w[i], 1e-5);
    }

    [Fact]
    public void ConversionsInvertEachOther()
    {
        using var _ = NewDisposeScope();
        using var s = new NoiseScheduler("cosine", 1000, "l2");
        var gen = new Generator(seed: 1);
        var x0 = randn([3, 3, 8, 8], generator: gen);
        var noise = randn([3, 3, 8, 8], generator: gen);
        var t = tensor(new long[] { 0, 500, 999 });
        var xt = s.QSample(x0, t, noise);
        // Each conversion is exact algebra; float32 limits the check where a coefficient is ~0
        // (x0 from ε at t = T−1 amplifies by √(1/ac) ≈ 200; ε from x0 at t = 0 by 1/√(1/ac−1) ≈ 150).
        Assert.True(s.PredictStartFromNoise(xt, t, noise)[..2].allclose(x0[..2], rtol: 1e-4, atol: 1e-4));
        Assert.True(s.PredictNoiseFromStart(xt, t, x0)[1..].allclose(noise[1..], rtol: 1e-3, atol: 1e-3));
        Assert.True(s.PredictStartFromV(xt, t, s.CalculateV(x0, t, noise)).allclose(x0, rtol: 1e-4, atol: 1e-4));
    }

    [Theory]
    [InlineData("l1", 1.0)]
    [InlineData("l2", 1.0)]
    [InlineData("huber", 0.5)]
    public void LossTypes(string type, double atOne)
    {
        using var s = new NoiseScheduler("cosine", 10, type);
        using var pred = tensor(new float[] { 1, 3 });
        using var target = tensor(new float[] { 0, 0 });
        var loss = s.Loss(pred, target).data<float>().ToArray();
        Assert.Equal(atOne, loss[0], 6);
        Assert.Equal(type switch { "l1" => 3.0, "l2" => 9.0, _ => 2.5 }, loss[1], 6);
    }
}
