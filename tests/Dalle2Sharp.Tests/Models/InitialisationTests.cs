using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

public class InitialisationTests
{
    /// <summary>
    /// Native tensors that TorchSharp leaves uninitialised (GroupNorm's affine parameters, `empty`) hold
    /// whatever memory held: a fresh model must have only finite, modest values, for every option.
    /// </summary>
    [Theory]
    [InlineData("plain")]
    [InlineData("every option")]
    public void FreshUnetHasOnlyFiniteModestWeights(string variant)
    {
        for (int round = 0; round < 3; round++)
        {
            var config = TinyDecoder.Unet();
            if (variant == "every option")
            {
                config.SelfCond = true; config.SparseAttn = true; config.CrossEmbedDownsample = true; config.MemoryEfficient = true;
                config.ResnetWeightStandardization = true; config.CosineSimCrossAttn = true; config.CosineSimSelfAttn = true;
                config.ScaleSkipConnection = true; config.PixelShuffleUpsample = false; config.LowresCond = true; config.LowresNoiseCond = true;
                config.CondOnTextEncodings = true; config.TextEmbedDim = 8;
            }
            using var unet = new Unet(config);
            foreach (var (name, p) in unet.named_parameters())
            {
                Assert.True(p.isfinite().all().item<bool>(), $"{name} has non-finite values");
                double max = p.abs().max().item<float>();
                Assert.True(max < 50, $"{name} has |value| {max}: uninitialised memory?");
            }
            GC.Collect();
        }
    }
}
