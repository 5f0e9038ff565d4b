using Dalle2Sharp.Config;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Models;
using Dalle2Sharp.Tests.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Training;

public class DecoderTrainerTests
{
    private static (Tensor Images, Tensor Embeds) Batch(int b = 2, int size = 16, ulong seed = 1)
    {
        var g = new Generator(seed: seed);
        return (rand([b, 3, size, size], generator: g), randn([b, 16], generator: g));
    }

    [Fact]
    public void WeightDecayGroupsAreUpstreams()
    {
        using var decoder = new Decoder(DecoderLossTests.TestDecoderConfig());
        using var trainer = new DecoderTrainer(decoder, new TrainConfig());
        var groups = trainer.Optimizer(1)!.Groups;
        Assert.Equal(2, groups.Count);
        Assert.Equal(209, groups[0].Parameters.Count);
        Assert.Equal(270, groups[1].Parameters.Count);
        Assert.Equal(0.01, groups[0].WeightDecay);
        Assert.Equal(0.0, groups[1].WeightDecay);
    }

    [Fact]
    public void WarmupRaisesTheLearningRateLinearly()
    {
        using var decoder = TinyDecoder.Create(timesteps: 10);
        using var trainer = new DecoderTrainer(decoder, new TrainConfig { Lr = 1e-3, WarmupSteps = new ScalarOrList<int?>(4), UseEma = false });
        var (images, embeds) = Batch();
        var lrs = Enumerable.Range(0, 6).Select(_ => trainer.Step(images, embeds, null, 1, new Generator(seed: 2)).LearningRate).ToArray();
        Assert.Equal([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3], lrs.Select(l => Math.Round(l, 10)));
        Assert.Equal(6, trainer.Steps[0]);
    }

    [Fact]
    public void EmaFollowsEmaPytorchsSchedule()
    {
        using var _ = NewDisposeScope();
        using var decoder = TinyDecoder.Create();
        using var ema = new UnetEma(decoder.Unet(1), beta: 0.999);
        var online = decoder.Unet(1).parameters().First();
        var averaged = ema.Averaged.parameters().First();
        using (no_grad()) online.fill_(1.0f);
        ema.Update();                                   // first call: copy
        Assert.Equal(1.0f, averaged[0].flatten()[0].item<float>());
        for (int s = 1; s <= 109; s++)
        {
            using (no_grad()) online.fill_(s % 10 == 0 && s <= 100 ? 2.0f : 3.0f);
            ema.Update();                                // copies at s = 10, 20, …, 100 only
        }
        Assert.Equal(2.0f, averaged[0].flatten()[0].item<float>());
        using (no_grad()) online.fill_(4.0f);
        ema.Update();                                    // s = 110: ema-pytorch 0.2.4 copies first (not initted), then averages
        Assert.Equal(4.0f, averaged[0].flatten()[0].item<float>());
        Assert.Equal(111, ema.Step);
        using (no_grad()) online.fill_(5.0f);
        for (int s = 111; s <= 120; s++) ema.Update();  // s = 120: decay 1 − 21^(−2/3)
        double decay = 1 - Math.Pow(21, -2.0 / 3.0);
        Assert.Equal(4.0 + (1 - decay) * 1.0, averaged[0].flatten()[0].item<float>(), 5);
    }

    [Fact]
    public void EmaStateHasEmaPytorch024ShapesAndLoadsEitherShape()
    {
        using var _ = NewDisposeScope();
        using var decoder = TinyDecoder.Create();
        using var ema = new UnetEma(decoder.Unet(1));
        var sd = ema.state_dict();
        Assert.Equal(new long[] { 1 }, sd["initted"].shape);
        Assert.Equal(ScalarType.Float32, sd["initted"].dtype);
        Assert.Equal(new long[] { 1 }, sd["step"].shape);
        Assert.Equal(ScalarType.Int64, sd["step"].dtype);
    }

    [Fact]
    public void DecayIsCappedAtBeta()
    {
        using var decoder = TinyDecoder.Create();
        using var ema = new UnetEma(decoder.Unet(1), beta: 0.99);
        for (int s = 0; s < 2000; s++) ema.Update();
        Assert.Equal(0.99, ema.CurrentDecay());
    }

    [Fact]
    public void MaskedUnetIsNotTrainedNorHeldInTheOptimizer()
    {
        using var _ = NewDisposeScope();
        using var decoder = TinyDecoder.Create(unets: 2);
        using var trainer = new DecoderTrainer(decoder, new TrainConfig { UnetTrainingMask = [true, false], UseEma = false });
        Assert.Null(trainer.Optimizer(2));
        var before1 = decoder.Unet(1).parameters().Select(p => p.clone()).ToArray();
        var before2 = decoder.Unet(2).parameters().Select(p => p.clone()).ToArray();
        var (images, embeds) = Batch(size: 32);
        trainer.Step(images, embeds, null, 1, new Generator(seed: 3));
        Assert.Contains(decoder.Unet(1).parameters().Zip(before1), p => !p.First.equal(p.Second).all().item<bool>());
        Assert.All(decoder.Unet(2).parameters().Zip(before2), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
        Assert.Throws<InvalidOperationException>(() => trainer.Step(images, embeds, null, 2));
    }

    [Fact]
    public void NonFiniteLossSkipsTheStep()
    {
        using var _ = NewDisposeScope();
        using var decoder = TinyDecoder.Create();
        using var trainer = new DecoderTrainer(decoder, new TrainConfig());
        var before = decoder.Unet(1).parameters().Select(p => p.clone()).ToArray();
        var (images, embeds) = Batch();
        images[0, 0, 0, 0] = tensor(float.NaN);
        var result = trainer.Step(images, embeds, null, 1, new Generator(seed: 3));
        Assert.True(result.Skipped);
        Assert.Equal(1, trainer.SkippedNonFinite);
        Assert.Equal(0, trainer.Steps[0]);
        Assert.Equal(0, trainer.Ema![0].Step);
        Assert.All(decoder.Unet(1).parameters().Zip(before), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
    }

    [Fact]
    public void SamplingUsesEmaWeightsWhenAsked()
    {
        using var _ = NewDisposeScope();
        using var decoder = TinyDecoder.Create(timesteps: 10);
        using var trainer = new DecoderTrainer(decoder, new TrainConfig { Lr = 1e-2, EmaBeta = 0.99 });
        var (images, embeds) = Batch();
        for (int s = 0; s < 3; s++) trainer.Step(images, embeds, null, 1, new Generator(seed: (ulong)s));
        var options = new SampleOptions { Samplers = [new SamplerSpec("ddim", 3)], Generator = new Generator(seed: 1) };
        var withEma = trainer.Sample(embeds, null, options with { Generator = new Generator(seed: 1) });
        var online = trainer.Sample(embeds, null, options with { Generator = new Generator(seed: 1) }, useEma: false);
        Assert.False(withEma.equal(online).all().item<bool>());
    }
}
