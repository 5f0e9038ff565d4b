using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

public class DecoderTrainingTests
{
    [Fact]
    public void TinyDecoderOverfitsOneBatch()
    {
        using var scope = NewDisposeScope();
        using var decoder = TinyDecoder.Create(timesteps: 100, learnedVariance: false);
        var g = new Generator(seed: 3);
        // Four flat-coloured images, each with its own embedding.
        var colours = tensor(new float[] { 0.9f, 0.1f, 0.1f, 0.1f, 0.8f, 0.2f, 0.1f, 0.2f, 0.9f, 0.9f, 0.9f, 0.2f }).reshape(4, 3, 1, 1);
        var images = colours.expand(4, 3, 16, 16).contiguous();
        var embeds = randn([4, 16], generator: g);

        var evalTimes = tensor(new long[] { 20, 40, 60, 80 });
        var evalNoise = randn([4, 3, 16, 16], generator: g);
        double EvalLoss()
        {
            using var _ = no_grad();
            return decoder.PLosses(1, images, evalTimes, new UnetConditioning(ImageEmbed: embeds), evalNoise).item<float>();
        }

        double before = EvalLoss();
        using var optimizer = optim.AdamW(decoder.parameters(), lr: 3e-3);
        for (int step = 0; step < 150; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            decoder.forward(images, embeds, generator: g).backward();
            optimizer.step();
        }
        double after = EvalLoss();
        Assert.True(after * 5 <= before, $"loss {before:F4} → {after:F4}: did not fall 5×");
    }

    [Fact]
    public void UpsamplerUnetTrainsOnLowresConditioning()
    {
        using var scope = NewDisposeScope();
        using var decoder = TinyDecoder.Create(unets: 2);
        var g = new Generator(seed: 1);
        var images = rand([2, 3, 32, 32], generator: g);
        var loss = decoder.forward(images, randn([2, 16], generator: g), unetNumber: 2, generator: g);
        Assert.True(loss.item<float>() is > 0 and < 10);
        loss.backward();
        Assert.Contains(decoder.Unet(2).parameters(), p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
        Assert.True(decoder.Unet(1).parameters().All(p => p.grad is null || p.grad.abs().sum().item<float>() == 0));
    }
}
