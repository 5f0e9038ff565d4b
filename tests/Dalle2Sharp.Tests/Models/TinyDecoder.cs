using Dalle2Sharp.Config;
using Dalle2Sharp.Models;

namespace Dalle2Sharp.Tests.Models;

/// <summary>Decoders small enough for tests: 8 channels, two stages, 16 px (and 32 px for the upsampler).</summary>
public static class TinyDecoder
{
    public static UnetConfig Unet(int embedDim = 16) => new()
    {
        Dim = 8, ImageEmbedDim = embedDim, CondDim = 8, DimMults = [1, 2], AttnDimHead = 8, AttnHeads = 2,
        SelfAttn = new ScalarOrList<bool>([false, true]), ResnetGroups = 4, NumResnetBlocks = 1,
    };

    public static DecoderConfig Config(int unets = 1, int timesteps = 20, bool learnedVariance = true) => new()
    {
        Unets = Enumerable.Range(0, unets).Select(_ => Unet()).ToList(),
        ImageSizes = unets == 1 ? [16] : [16, 32],
        Timesteps = timesteps,
        LearnedVariance = learnedVariance,
    };

    public static Decoder Create(int unets = 1, int timesteps = 20, bool learnedVariance = true, long seed = 0)
    {
        TorchSharp.torch.manual_seed(seed);
        return new Decoder(Config(unets, timesteps, learnedVariance));
    }
}
