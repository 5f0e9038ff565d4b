using Dalle2Sharp.Config;
using Dalle2Sharp.Tests.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Training;

/// <summary>train.amp: bfloat16 compute, float32 master weights and moments, float32 checkpoints.</summary>
public class MixedPrecisionTests
{
    [Fact]
    public void AmpComputesInBfloat16AndKeepsAndSavesFloat32MasterWeights()
    {
        using var scope = NewDisposeScope();
        using var dir = new TestPaths.TempDir();
        using var fp32Decoder = TinyDecoder.Create(timesteps: 10);
        using var ampDecoder = TinyDecoder.Create(timesteps: 10);
        ampDecoder.load_state_dict(fp32Decoder.state_dict());   // the same weights (copied: tests share torch's RNG)
        var initial = fp32Decoder.Unet(1).parameters().Select(p => p.detach().clone()).ToList();
        using var fp32 = new DecoderTrainer(fp32Decoder, new TrainConfig { Lr = 1e-3, EmaBeta = 0.99 });
        using var amp = new DecoderTrainer(ampDecoder, new TrainConfig { Lr = 1e-3, EmaBeta = 0.99, Amp = true });

        Assert.All(ampDecoder.Unet(1).parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.All(amp.Ema![0].Averaged.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.True(amp.Optimizer(1)!.HasFloat32Master);
        // The master starts as the float32 weights themselves, not their bfloat16 rounding.
        foreach (var (p, value) in ampDecoder.Unet(1).parameters().Zip(initial))
            Assert.True(amp.Float32(p).equal(value).all().item<bool>());

        var data = new Generator(seed: 5);
        for (int s = 0; s < 4; s++)
        {
            var images = rand([2, 3, 16, 16], generator: data);
            var embeds = randn([2, 16], generator: data);
            double lossFp32 = fp32.Step(images, embeds, null, 1, new Generator(seed: (ulong)s)).Loss;
            double lossAmp = amp.Step(images, embeds, null, 1, new Generator(seed: (ulong)s)).Loss;
            Assert.True(Math.Abs(lossAmp - lossFp32) <= 0.05 * lossFp32, $"step {s}: amp loss {lossAmp}, float32 {lossFp32}");
            // Computed in bfloat16 indeed (from step 1: the output conv starts at zero, as upstream's, so the first
            // prediction is 0 in any precision).
            if (s > 0) Assert.NotEqual(lossFp32, lossAmp);
        }
        // The parameters are the master weights rounded to bfloat16, and the master moved off them.
        foreach (var p in ampDecoder.Unet(1).parameters())
            Assert.True(amp.Float32(p).to(ScalarType.BFloat16).equal(p).all().item<bool>());
        Assert.Contains(ampDecoder.Unet(1).parameters(), p => !amp.Float32(p).equal(p.to(ScalarType.Float32)).all().item<bool>());

        // Checkpoints hold float32 master weights; a float32 and an amp trainer both load them exactly.
        Checkpoint.Save(dir.File("amp.pth"), amp);
        var saved = Dalle2Sharp.Runtime.TorchFiles.LoadStateDict(dir.File("amp.pth"));
        var model = (System.Collections.IDictionary)saved["model"]!;
        Assert.Equal(ScalarType.Float32, ((Tensor)model["unets.0.init_conv.convs.0.weight"]!).dtype);
        using var reloadedDecoder = TinyDecoder.Create(timesteps: 10);
        using var reloaded = new DecoderTrainer(reloadedDecoder, new TrainConfig { Lr = 1e-3, EmaBeta = 0.99, Amp = true });
        Checkpoint.Load(dir.File("amp.pth"), reloaded);
        foreach (var (a, b) in ampDecoder.Unet(1).parameters().Zip(reloadedDecoder.Unet(1).parameters()))
            Assert.True(amp.Float32(a).equal(reloaded.Float32(b)).all().item<bool>());
        using var plainDecoder = TinyDecoder.Create(timesteps: 10);
        using var plain = new DecoderTrainer(plainDecoder, new TrainConfig { Lr = 1e-3, EmaBeta = 0.99 });
        Checkpoint.Load(dir.File("amp.pth"), plain);
        foreach (var (a, b) in ampDecoder.Unet(1).parameters().Zip(plainDecoder.Unet(1).parameters()))
            Assert.True(amp.Float32(a).equal(b).all().item<bool>());
    }
}
