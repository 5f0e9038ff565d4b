using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Models;
using Dalle2Sharp.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Diffusion;

public class SamplerTests
{
    [Fact]
    public void DdimTimeGridIsUpstreams()
    {
        Assert.Equal([(8, 6), (6, 4), (4, 2), (2, 0)], Samplers.DdimTimePairs(10, 4));
        var pairs = Samplers.DdimTimePairs(1000, 64);
        Assert.Equal(984, pairs[0].T);
        Assert.Equal(969, pairs[1].T);
        Assert.Equal((15, 0), pairs[^1]);
    }

    /// <summary>A tiny decoder with non-trivial weights (upstream zero-inits the output conv, which would make every sampler return the same thing).</summary>
    private static Decoder RandomisedDecoder(int unets = 1)
    {
        var decoder = TinyDecoder.Create(unets: unets, timesteps: 20);
        using (no_grad())
            foreach (var (name, p) in decoder.named_parameters())
                if (name.Contains("to_out.weight") || name.Contains("to_out.bias")) p.copy_(randn(p.shape, generator: new Generator(seed: 5)) * 0.1);
        return decoder;
    }

    public static TheoryData<string, int?> Specs => new() { { "ddpm", null }, { "ddim", 5 }, { "dpmpp", 5 } };

    [Theory, MemberData(nameof(Specs))]
    public void SamplerReturnsImagesInRangeDeterministicallyForASeed(string kind, int? steps)
    {
        using var scope = NewDisposeScope();
        using var decoder = RandomisedDecoder();
        var embed = randn([2, 16], generator: new Generator(seed: 9));
        Tensor Run(long seed) => decoder.Sample(embed, options: new SampleOptions
        {
            Samplers = [new SamplerSpec(kind, steps)], Generator = new Generator(seed: (ulong)seed),
        });
        var a = Run(1);
        Assert.Equal(new long[] { 2, 3, 16, 16 }, a.shape);
        Assert.True(a.min().item<float>() >= 0 && a.max().item<float>() <= 1);
        Assert.True(a.std().item<float>() > 0.01);
        Assert.True(a.equal(Run(1)).all().item<bool>(), "same seed, different images");
        Assert.False(a.equal(Run(2)).all().item<bool>(), "different seeds, same images");
    }

    [Theory, MemberData(nameof(Specs))]
    public void CondScaleChangesTheOutput(string kind, int? steps)
    {
        using var scope = NewDisposeScope();
        using var decoder = RandomisedDecoder();
        using (no_grad()) decoder.Unet(1).named_parameters().First(p => p.name == "null_image_embed").parameter.add_(1.0);
        var embed = randn([2, 16], generator: new Generator(seed: 9));
        Tensor Run(double scale) => decoder.Sample(embed, options: new SampleOptions
        {
            Samplers = [new SamplerSpec(kind, steps)], Generator = new Generator(seed: 1), CondScale = [scale],
        });
        double diff = (Run(1.0) - Run(3.0)).abs().max().item<float>();
        Assert.True(diff > 1e-3, $"cond_scale 3 gave the same images (max diff {diff})");
    }

    [Fact]
    public void CascadeSamplesAtTheLastUnetsSize()
    {
        using var scope = NewDisposeScope();
        using var decoder = RandomisedDecoder(unets: 2);
        var embed = randn([1, 16], generator: new Generator(seed: 9));
        var images = decoder.Sample(embed, options: new SampleOptions { Samplers = [new SamplerSpec("ddim", 3)], Generator = new Generator(seed: 1) });
        Assert.Equal(new long[] { 1, 3, 32, 32 }, images.shape);
        var first = decoder.Sample(embed, options: new SampleOptions { Samplers = [new SamplerSpec("ddim", 3)], StopAtUnet = 1, Generator = new Generator(seed: 1) });
        Assert.Equal(new long[] { 1, 3, 16, 16 }, first.shape);
    }

    [Fact]
    public void SamplingDrawsInitialNoiseThenOneNormalPerStep()
    {
        // With a model that predicts zero noise, DDPM's result is a fixed function of the draws:
        // replaying the same generator by hand must give the same image.
        using var scope = NewDisposeScope();
        var scheduler = new NoiseScheduler("cosine", 5, "l2");
        var d = new Denoiser(scheduler, 3, learnedVariance: false, predictXStart: false, predictV: false);
        GuidedModel zero = (x, t, _) => zeros_like(x);
        var sampled = Samplers.Ddpm(d, zero, [1, 3, 2, 2], clipDenoised: true, selfCond: false, CPU, new Generator(seed: 4));

        var g = new Generator(seed: 4);
        var img = randn([1, 3, 2, 2], generator: g);
        for (int step = 4; step >= 0; step--)
        {
            var t = full(1, step, dtype: int64);
            var x0 = scheduler.PredictStartFromNoise(img, t, zeros_like(img)).clamp(-1, 1);
            var (mean, _, logVar) = scheduler.QPosterior(x0, img, t);
            var noise = randn([1, 3, 2, 2], generator: g);
            img = step > 0 ? mean + (0.5 * logVar).exp() * noise : mean;
        }
        Assert.True(sampled.allclose(img, rtol: 1e-5, atol: 1e-6));
    }

    [Theory]
    [InlineData(20, 20)]   // the rounded grid repeats 10 (9.5 and 10.45): a zero-length step divided by zero
    [InlineData(10, 25)]   // more steps than timesteps
    [InlineData(10, 10)]
    [InlineData(1000, 25)]
    public void DpmSolverGridHasNoRepeatedTimesteps(int timesteps, int steps)
    {
        var grid = Samplers.DpmSolverGrid(timesteps, steps);
        Assert.Equal(timesteps - 1, grid[0]);
        Assert.Equal(0, grid[^1]);
        Assert.True(grid.Zip(grid.Skip(1)).All(p => p.First > p.Second), string.Join(",", grid));
        if (steps >= timesteps) Assert.Equal(timesteps, grid.Length);
    }

    [Theory]
    [InlineData(20, 20)]
    [InlineData(10, 25)]
    [InlineData(10, 10)]
    public void DpmSolverGivesFiniteImagesWhateverTheSteps(int timesteps, int steps)
    {
        using var scope = NewDisposeScope();
        using var decoder = TinyDecoder.Create(unets: 1, timesteps: timesteps);
        using (no_grad())
            foreach (var (name, p) in decoder.named_parameters())
                if (name.Contains("to_out.weight") || name.Contains("to_out.bias")) p.copy_(randn(p.shape, generator: new Generator(seed: 5)) * 0.1);
        var embed = randn([2, 16], generator: new Generator(seed: 9));
        var images = decoder.Sample(embed, options: new SampleOptions { Samplers = [new SamplerSpec("dpmpp", steps)], Generator = new Generator(seed: 1) });
        Assert.True(images.isfinite().all().item<bool>(), "non-finite pixels");
        Assert.True(images.std().item<float>() > 0.01, "a flat (all-black) image");
    }
}
