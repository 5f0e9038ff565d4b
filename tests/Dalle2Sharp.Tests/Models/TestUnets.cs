using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Models;

/// <summary>The upstream test-config Unet (configs/train_decoder_config.test.json), as configured and as cast by the Decoder.</summary>
public static class TestUnets
{
    public static UnetConfig TestConfig() => new()
    {
        Dim = 16, ImageEmbedDim = 768, CondDim = 16, Channels = 3, DimMults = [1, 2, 4, 8],
        AttnDimHead = 16, AttnHeads = 4, SelfAttn = new ScalarOrList<bool>([false, true, true, true]),
    };

    /// <summary>As the Decoder rebuilds unet 1: image-conditioned, 6 output channels (learned variance).</summary>
    public static UnetConfig DecoderCast()
    {
        var c = TestConfig();
        c.CondOnImageEmbeds = true;
        c.ChannelsOut = 6;
        return c;
    }
}
