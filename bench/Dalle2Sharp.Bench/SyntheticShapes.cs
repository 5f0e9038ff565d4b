using static TorchSharp.torch;

namespace Dalle2Sharp.Bench;

/// <summary>
/// Images of one coloured disc or square on a coloured background, and a stand-in "embedding"
/// computed from what is drawn (colours, shape, position) — enough for a decoder to learn to follow
/// its conditioning without CLIP weights.
/// </summary>
public static class SyntheticShapes
{
    public const int EmbedDim = 32;

    public static (Tensor Images, Tensor Embeds) Batch(int count, int size, Generator g)
    {
        var p = rand([count, 10], generator: g, dtype: float32);
        var fg = p[.., 0..3];
        var bg = 1 - fg * 0.8f;
        var isDisc = p[.., 3] < 0.5;
        var cx = 0.3f + 0.4f * p[.., 4];
        var cy = 0.3f + 0.4f * p[.., 5];
        var r = 0.15f + 0.15f * p[.., 6];
        var coords = (arange(size, dtype: float32) + 0.5f) / size;
        var yy = coords.reshape(1, size, 1);
        var xx = coords.reshape(1, 1, size);
        var dx = xx - cx.reshape(-1, 1, 1);
        var dy = yy - cy.reshape(-1, 1, 1);
        var disc = (dx.square() + dy.square()) < r.reshape(-1, 1, 1).square();
        var square = (dx.abs() < r.reshape(-1, 1, 1)) & (dy.abs() < r.reshape(-1, 1, 1));
        var mask = where(isDisc.reshape(-1, 1, 1), disc, square).unsqueeze(1).to(float32);
        var images = mask * fg.reshape(-1, 3, 1, 1) + (1 - mask) * bg.reshape(-1, 3, 1, 1);
        var features = cat([fg, isDisc.to(float32).unsqueeze(1), cx.unsqueeze(1), cy.unsqueeze(1), r.unsqueeze(1)], 1) * 2 - 1;
        return (images, Project(features));
    }

    /// <summary>A fixed random projection to EmbedDim, L2-normalised like a CLIP embedding.</summary>
    private static Tensor Project(Tensor features)
    {
        var projection = randn([features.shape[1], EmbedDim], generator: new Generator(seed: 1234));
        return nn.functional.normalize(features.matmul(projection), dim: -1);
    }
}
