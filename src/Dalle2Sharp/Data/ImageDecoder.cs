using SkiaSharp;

namespace Dalle2Sharp.Data;

/// <summary>A decoded RGB image, 8 bits per channel, row-major HWC.</summary>
public sealed record RgbImage(int Width, int Height, byte[] Pixels);

/// <summary>
/// Decodes jpg / png / webp with SkiaSharp into RGB: EXIF orientation applied (upstream's PIL path
/// ignores it), greyscale and CMYK converted, alpha dropped the way PIL's convert("RGB") drops it.
/// </summary>
public static class ImageDecoder
{
    public static readonly string[] Extensions = ["jpg", "jpeg", "png", "webp"];

    public static RgbImage Decode(byte[] encoded)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new InvalidDataException("not a decodable image");
        // Full-size decode only: SkiaSharp 2.88.6's scaled JPEG decode (1/2, 1/4, 1/8) crashes natively.
        var (rgba, info, result) = GetPixels(codec, codec.Info.Width, codec.Info.Height);
        if (result == SKCodecResult.IncompleteInput) throw new InvalidDataException("image data is truncated");
        if (result != SKCodecResult.Success) throw new InvalidDataException($"image decode failed: {result}");
        return Orient(info.Width, info.Height, rgba, codec.EncodedOrigin);
    }

    private static (byte[] Rgba, SKImageInfo Info, SKCodecResult Result) GetPixels(SKCodec codec, int width, int height)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[info.BytesSize];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = rgba) result = codec.GetPixels(info, (IntPtr)p);
        }
        return (rgba, info, result);
    }

    private static bool Swaps(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>Drops alpha and applies the EXIF orientation (the eight cases of SKEncodedOrigin).</summary>
    private static RgbImage Orient(int w, int h, byte[] rgba, SKEncodedOrigin origin)
    {
        bool swap = Swaps(origin);
        int outW = swap ? h : w, outH = swap ? w : h;
        var rgb = new byte[outW * outH * 3];
        if (origin is SKEncodedOrigin.TopLeft or SKEncodedOrigin.Default)
        {
            for (int src = 0, dst = 0; dst < rgb.Length; src += 4, dst += 3)
            {
                rgb[dst] = rgba[src];
                rgb[dst + 1] = rgba[src + 1];
                rgb[dst + 2] = rgba[src + 2];
            }
            return new RgbImage(outW, outH, rgb);
        }
        for (int y = 0; y < outH; y++)
        {
            for (int x = 0; x < outW; x++)
            {
                // (sx, sy): the stored pixel shown at display position (x, y).
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (w - 1 - x, y),
                    SKEncodedOrigin.BottomRight => (w - 1 - x, h - 1 - y),
                    SKEncodedOrigin.BottomLeft => (x, h - 1 - y),
                    SKEncodedOrigin.LeftTop => (y, x),
                    SKEncodedOrigin.RightTop => (y, h - 1 - x),
                    SKEncodedOrigin.RightBottom => (w - 1 - y, h - 1 - x),
                    SKEncodedOrigin.LeftBottom => (w - 1 - y, x),
                    _ => (x, y),
                };
                int src = (sy * w + sx) * 4, dst = (y * outW + x) * 3;
                rgb[dst] = rgba[src];
                rgb[dst + 1] = rgba[src + 1];
                rgb[dst + 2] = rgba[src + 2];
            }
        }
        return new RgbImage(outW, outH, rgb);
    }

    /// <summary>Encodes an HWC RGB image as PNG (sample grids, test data).</summary>
    public static byte[] EncodePng(RgbImage image) => Encode(image, SKEncodedImageFormat.Png, 100);

    public static byte[] EncodeJpeg(RgbImage image, int quality = 90) => Encode(image, SKEncodedImageFormat.Jpeg, quality);

    private static byte[] Encode(RgbImage image, SKEncodedImageFormat format, int quality)
    {
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var rgba = new byte[image.Width * image.Height * 4];
        for (int i = 0, j = 0; i < image.Pixels.Length; i += 3, j += 4)
        {
            rgba[j] = image.Pixels[i];
            rgba[j + 1] = image.Pixels[i + 1];
            rgba[j + 2] = image.Pixels[i + 2];
            rgba[j + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var encoded = bitmap.Encode(format, quality);
        return encoded.ToArray();
    }
}
