using static TorchSharp.torch;

namespace Dalle2Sharp.Models;

/// <summary>
/// resize-right's <c>resize</c> (Shocher et al.) as DALLE2-pytorch's <c>resize_image_to</c> calls it:
/// scale factor target/original on the two spatial dims, cubic kernel (support 4), antialiasing when
/// downscaling (the kernel stretched by 1/scale), zero ("constant") padding outside the image with the
/// weights normalised over the whole window — so border pixels are darkened exactly as upstream's are.
/// Each dim is a weight matrix [out, in] built in float32 as resize-right builds its weights, applied
/// as a matrix product (the same sums in another order: equal within float rounding).
/// </summary>
public static class ResizeRight
{
    private const double CubicSupport = 4;
    private static readonly float Float32Epsilon = MathF.BitIncrement(1f) - 1f;

    /// <summary>Resizes [.., H, W] with H = W to <paramref name="targetSize"/>; the same size returns the input.</summary>
    public static Tensor Resize(Tensor image, int targetSize)
    {
        long size = image.shape[^1];
        if (size == targetSize) return image;
        using var scope = NewDisposeScope();
        double scale = (double)targetSize / size;
        var heights = WeightMatrix(image.shape[^2], scale).to(image.dtype).to(image.device);
        var widths = WeightMatrix(size, scale).to(image.dtype).to(image.device);
        // resize-right resizes the dims in order of their scale factors (equal here): height, then width.
        var resizedHeight = heights.matmul(image);
        return resizedHeight.matmul(widths.t()).MoveToOuterDisposeScope();
    }

    /// <summary>The [out, in] matrix one dim is multiplied by: rows are resize-right's normalised weights.</summary>
    public static Tensor WeightMatrix(long inSize, double scale)
    {
        long outSize = (long)Math.Ceiling(scale * inSize);
        using var scope = NewDisposeScope();
        // Projected grid (float32, as resize-right computes it on an int64 arange).
        var grid = arange(outSize, dtype: float32) / (float)scale + (float)((inSize - 1) / 2.0 - (outSize - 1) / (2.0 * scale));
        bool antialias = scale < 1.0;
        double support = antialias ? CubicSupport / scale : CubicSupport;
        var left = (grid - (float)(support / 2) - Float32Epsilon).ceil().to(int64);
        var fieldOfView = left.unsqueeze(1) + arange((long)Math.Ceiling(support - Float32Epsilon), dtype: int64);
        var distance = grid.unsqueeze(1) - fieldOfView.to(float32);
        var weights = antialias ? (float)scale * Cubic(distance * (float)scale) : Cubic(distance);
        var sums = weights.sum(1, keepdim: true);
        sums = where(sums == 0, ones_like(sums), sums);
        weights = weights / sums;
        // Scatter into [out, in]; taps outside the image read resize-right's zero padding and drop out.
        var inside = (fieldOfView >= 0).logical_and(fieldOfView < inSize);
        var matrix = zeros(outSize, inSize, dtype: float32);
        var rows = arange(outSize, dtype: int64).unsqueeze(1).expand_as(fieldOfView);
        matrix.index_put_(weights.masked_select(inside), rows.masked_select(inside), fieldOfView.masked_select(inside));
        return matrix.MoveToOuterDisposeScope();
    }

    /// <summary>Keys' cubic convolution kernel (a = −0.5) as resize-right's interp_methods.cubic.</summary>
    private static Tensor Cubic(Tensor x)
    {
        var a = x.abs();
        var a2 = a.pow(2);
        var a3 = a.pow(3);
        return (1.5f * a3 - 2.5f * a2 + 1f) * (a <= 1f).to(float32)
             + (-0.5f * a3 + 2.5f * a2 - 4f * a + 2f) * (a > 1f).logical_and(a <= 2f).to(float32);
    }
}
