using Dalle2Sharp.Config;

namespace Dalle2Sharp.Bench;

public static class BenchModels
{
    /// <summary>The upstream test config's Unet (configs/train_decoder_config.test.json), 64 px, T = 1000.</summary>
    public static DecoderConfig TestConfigDecoder() => new()
    {
        Unets = [new UnetConfig { Dim = 16, ImageEmbedDim = 768, CondDim = 16, DimMults = [1, 2, 4, 8], AttnDimHead = 16, AttnHeads = 4, SelfAttn = new([false, true, true, true]) }],
        ImageSizes = [64], Timesteps = 1000,
    };
}
