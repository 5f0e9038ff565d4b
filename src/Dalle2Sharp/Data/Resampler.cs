using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Dalle2Sharp.Data;

public enum ResampleFilter { Nearest, Bilinear, Bicubic }

/// <summary>A rectangle of whole pixels inside an image.</summary>
public readonly record struct PixelRect(int X, int Y, int Width, int Height);

/// <summary>A rectangle in (fractional) pixel coordinates: left, top, right, bottom.</summary>
public readonly record struct SourceBox(double X0, double Y0, double X1, double Y1);

/// <summary>
/// Pillow's <c>Image.resize(size, filter, box)</c> on 8-bit RGB, bit for bit: separable convolution
/// with the filter widened by the downscale factor (so downscaling is always antialiased), Pillow's
/// 22-bit fixed-point coefficients, the horizontal pass first and each pass rounded to uint8; nearest
/// as Pillow's affine nearest sampling. Written by hand because upstream applies torchvision's
/// transforms to PIL images, so this is the behaviour to match, and no library here reproduces it
/// (Skia's filters differ; torch's antialiased interpolate works in float and is slower on bytes).
/// </summary>
public static class Resampler
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Off: the plain loops even where SSE4.1/AVX2 exist (tests compare both; results are identical).</summary>
    internal static bool UseIntrinsics { get; set; } = true;

    /// <summary>
    /// Resamples the part <paramref name="window"/> of <paramref name="image"/> as if it had been cropped
    /// out first (the filter does not reach past its edges), reading <paramref name="box"/> (in the
    /// window's coordinates) onto an <paramref name="outWidth"/> × <paramref name="outHeight"/> image.
    /// </summary>
    public static RgbImage Resize(RgbImage image, PixelRect window, SourceBox box, int outWidth, int outHeight, ResampleFilter filter)
    {
        if (window.X < 0 || window.Y < 0 || window.Width <= 0 || window.Height <= 0 ||
            window.X + window.Width > image.Width || window.Y + window.Height > image.Height)
            throw new ArgumentOutOfRangeException(nameof(window), $"{window} is not inside the {image.Width}×{image.Height} image");
        if (outWidth <= 0 || outHeight <= 0) throw new ArgumentOutOfRangeException(nameof(outWidth), "output size must be positive");
        if (filter == ResampleFilter.Nearest) return Nearest(image, window, box, outWidth, outHeight);

        bool needHorizontal = outWidth != window.Width || box.X0 != 0 || box.X1 != window.Width;
        bool needVertical = outHeight != window.Height || box.Y0 != 0 || box.Y1 != window.Height;
        if (!needHorizontal && !needVertical) return Crop(image, window);

        var horizontal = Coefficients(window.Width, box.X0, box.X1, outWidth, filter);
        var vertical = Coefficients(window.Height, box.Y0, box.Y1, outHeight, filter);
        if (!needHorizontal) return Vertical(image, window.X, window.Y, window.Width, vertical, outHeight);

        // Only the rows the vertical pass reads go through the horizontal pass.
        int firstRow = vertical.Bounds[0];
        int lastRow = vertical.Bounds[2 * outHeight - 2] + vertical.Bounds[2 * outHeight - 1];
        var rows = Horizontal(image, window.X, window.Y + firstRow, lastRow - firstRow, horizontal, outWidth);
        if (!needVertical) return rows;
        for (int i = 0; i < outHeight; i++) vertical.Bounds[2 * i] -= firstRow;
        return Vertical(rows, 0, 0, outWidth, vertical, outHeight);
    }

    /// <summary>Resize of a whole image (Pillow's resize without a box).</summary>
    public static RgbImage Resize(RgbImage image, int outWidth, int outHeight, ResampleFilter filter) =>
        Resize(image, new PixelRect(0, 0, image.Width, image.Height), new SourceBox(0, 0, image.Width, image.Height), outWidth, outHeight, filter);

    public static RgbImage Crop(RgbImage image, PixelRect window)
    {
        var pixels = new byte[window.Width * window.Height * 3];
        for (int y = 0; y < window.Height; y++)
            Buffer.BlockCopy(image.Pixels, ((window.Y + y) * image.Width + window.X) * 3, pixels, y * window.Width * 3, window.Width * 3);
        return new RgbImage(window.Width, window.Height, pixels);
    }

    private sealed record Taps(int[] Bounds, int[] Weights, int Size);

    private static double Support(ResampleFilter filter) => filter == ResampleFilter.Bicubic ? 2.0 : 1.0;

    private static double Kernel(ResampleFilter filter, double x)
    {
        x = Math.Abs(x);
        if (filter == ResampleFilter.Bilinear) return x < 1.0 ? 1.0 - x : 0.0;
        const double a = -0.5;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Per output pixel: the first input pixel, the tap count and the fixed-point weights (Pillow's precompute_coeffs).</summary>
    private static Taps Coefficients(int inSize, double in0, double in1, int outSize, ResampleFilter filter)
    {
        double scale = (in1 - in0) / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = Support(filter) * filterScale;
        int size = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * size];
        var k = new double[size];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = in0 + (xx + 0.5) * scale;
            double inverse = 1.0 / filterScale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            double total = 0;
            for (int x = 0; x < xmax; x++)
            {
                k[x] = Kernel(filter, (x + xmin - center + 0.5) * inverse);
                total += k[x];
            }
            for (int x = 0; x < xmax; x++)
            {
                double w = total != 0 ? k[x] / total : k[x];
                weights[xx * size + x] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = Math.Max(xmax, 0);
        }
        return new Taps(bounds, weights, size);
    }

    private static byte Clip8(int value)
    {
        int shifted = value >> PrecisionBits;
        return shifted < 0 ? (byte)0 : shifted > 255 ? (byte)255 : (byte)shifted;
    }

    // The two passes below are Pillow's loops; with SSE4.1 / AVX2 the taps are summed four (a pixel's
    // three channels and one spare lane) or eight values at a time, integer math unchanged, so the
    // result is the same bit for bit and the resize several times faster than Pillow's scalar code.

    private static unsafe RgbImage Horizontal(RgbImage image, int x0, int y0, int rows, Taps taps, int outWidth)
    {
        var dst = new byte[outWidth * rows * 3];
        fixed (byte* src = image.Pixels)
        fixed (int* weights = taps.Weights)
        fixed (int* bounds = taps.Bounds)
        fixed (byte* output = dst)
        {
            for (int y = 0; y < rows; y++)
            {
                byte* row = src + ((y0 + y) * image.Width + x0) * 3;
                byte* outRow = output + y * outWidth * 3;
                // A vector reads four bytes per pixel: the spare byte must still lie inside the buffer.
                int lastByte = ((y0 + y) * image.Width + x0 + bounds[2 * outWidth - 2] + bounds[2 * outWidth - 1]) * 3;
                bool vectors = UseIntrinsics && Sse41.IsSupported && lastByte + 1 <= image.Pixels.Length;
                for (int xx = 0; xx < outWidth; xx++)
                {
                    int count = bounds[2 * xx + 1];
                    byte* p = row + bounds[2 * xx] * 3;
                    int* k = weights + xx * taps.Size;
                    if (vectors)
                    {
                        var sum = Vector128.Create(1 << (PrecisionBits - 1));
                        for (int x = 0; x < count; x++, p += 3)
                            sum += Sse41.MultiplyLow(Sse41.ConvertToVector128Int32(p), Vector128.Create(k[x]));
                        // Clip8 on all lanes: shift, then saturate to int16 and to uint8.
                        var shifted = Sse2.ShiftRightArithmetic(sum, PrecisionBits);
                        var packed = Sse2.PackUnsignedSaturate(Sse2.PackSignedSaturate(shifted, shifted), default).AsUInt32().ToScalar();
                        if (xx + 1 < outWidth) *(uint*)(outRow + 3 * xx) = packed;    // the spare byte is overwritten next
                        else
                        {
                            outRow[3 * xx] = (byte)packed;
                            outRow[3 * xx + 1] = (byte)(packed >> 8);
                            outRow[3 * xx + 2] = (byte)(packed >> 16);
                        }
                        continue;
                    }
                    int r = 1 << (PrecisionBits - 1), g = r, b = r;
                    for (int x = 0; x < count; x++, p += 3)
                    {
                        r += p[0] * k[x];
                        g += p[1] * k[x];
                        b += p[2] * k[x];
                    }
                    outRow[3 * xx] = Clip8(r);
                    outRow[3 * xx + 1] = Clip8(g);
                    outRow[3 * xx + 2] = Clip8(b);
                }
            }
        }
        return new RgbImage(outWidth, rows, dst);
    }

    private static unsafe RgbImage Vertical(RgbImage image, int x0, int y0, int width, Taps taps, int outHeight)
    {
        int n = width * 3, stride = image.Width * 3;
        var dst = new byte[n * outHeight];
        fixed (byte* src = image.Pixels)
        fixed (int* weights = taps.Weights)
        fixed (byte* output = dst)
        {
            for (int yy = 0; yy < outHeight; yy++)
            {
                int count = taps.Bounds[2 * yy + 1];
                int* k = weights + yy * taps.Size;
                byte* column = src + (y0 + taps.Bounds[2 * yy]) * stride + x0 * 3;
                byte* outRow = output + yy * n;
                int i = 0;
                if (UseIntrinsics && Avx2.IsSupported)
                {
                    for (; i + 8 <= n; i += 8)
                    {
                        var sum = Vector256.Create(1 << (PrecisionBits - 1));
                        byte* p = column + i;
                        for (int y = 0; y < count; y++, p += stride)
                            sum += Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p), Vector256.Create(k[y]));
                        var shifted = Avx2.ShiftRightArithmetic(sum, PrecisionBits);
                        var words = Sse2.PackSignedSaturate(shifted.GetLower(), shifted.GetUpper());
                        *(ulong*)(outRow + i) = Sse2.PackUnsignedSaturate(words, words).AsUInt64().ToScalar();
                    }
                }
                for (; i < n; i++)
                {
                    int sum = 1 << (PrecisionBits - 1);
                    byte* p = column + i;
                    for (int y = 0; y < count; y++, p += stride) sum += *p * k[y];
                    outRow[i] = Clip8(sum);
                }
            }
        }
        return new RgbImage(width, outHeight, dst);
    }

    /// <summary>Pillow's nearest resize: affine sampling at output pixel centres, positions accumulated step by step as Pillow does.</summary>
    private static RgbImage Nearest(RgbImage image, PixelRect window, SourceBox box, int outWidth, int outHeight)
    {
        double stepX = (box.X1 - box.X0) / outWidth, stepY = (box.Y1 - box.Y0) / outHeight;
        var columns = new int[outWidth];
        double position = box.X0 + stepX * 0.5;
        for (int x = 0; x < outWidth; x++, position += stepX) columns[x] = Coordinate(position, window.Width);
        var dst = new byte[outWidth * outHeight * 3];
        position = box.Y0 + stepY * 0.5;
        for (int y = 0; y < outHeight; y++, position += stepY)
        {
            int row = Coordinate(position, window.Height);
            if (row < 0) continue;
            for (int x = 0; x < outWidth; x++)
            {
                if (columns[x] < 0) continue;
                int s = ((window.Y + row) * image.Width + window.X + columns[x]) * 3, o = (y * outWidth + x) * 3;
                dst[o] = image.Pixels[s];
                dst[o + 1] = image.Pixels[s + 1];
                dst[o + 2] = image.Pixels[s + 2];
            }
        }
        return new RgbImage(outWidth, outHeight, dst);
    }

    /// <summary>A sampling position → pixel index, or −1 outside (left black, as Pillow's transform leaves it).</summary>
    private static int Coordinate(double position, int size)
    {
        int i = position < 0 ? -1 : (int)position;
        return i < size ? i : -1;
    }
}
