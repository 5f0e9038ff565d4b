using SkiaSharp;

namespace Dalle2Sharp.Data;

/// <summary>An image too large to decode safely: skipped as a data issue, like Pillow's DecompressionBombError.</summary>
public sealed class ImageTooLargeException(string message) : Exception(message);

/// <summary>A decoded RGB image, 8 bits per channel, row-major HWC.</summary>
public sealed record RgbImage(int Width, int Height, byte[] Pixels);

/// <summary>
/// Decodes jpg / png / webp with SkiaSharp into RGB: EXIF orientation applied (upstream's PIL path
/// ignores it), greyscale and CMYK converted, alpha dropped the way PIL's convert("RGB") drops it.
/// SkiaSharp 2.88.9 or newer: 2.88.6's scaled JPEG decode crashes natively.
/// </summary>
public static class ImageDecoder
{
    public static readonly string[] Extensions = ["jpg", "jpeg", "png", "webp"];

    /// <summary>What decodes JPEGs on this machine (see <see cref="TurboJpeg"/>), for logs and benchmarks.</summary>
    public static string JpegBackend => TurboJpeg.Available
        ? "libjpeg-turbo with SIMD (libturbojpeg.so.0)"
        : "SkiaSharp's libjpeg-turbo (no SIMD; install libturbojpeg0 for a faster decode)";

    public static RgbImage Decode(byte[] encoded, long maxPixels = Config.DataConfig.DefaultMaxImagePixels)
    {
        using var image = Open(encoded, maxPixels);
        return image.Decode();
    }

    /// <summary>
    /// Reads the header only: the displayed size is known before any pixel is decoded. An image of more
    /// than <paramref name="maxPixels"/> pixels (0: no limit) is refused here, before any buffer exists.
    /// </summary>
    public static EncodedImage Open(byte[] encoded, long maxPixels = Config.DataConfig.DefaultMaxImagePixels) => new(encoded, maxPixels);

    /// <summary>
    /// Bytes of a width × height × channels buffer, in checked 64-bit arithmetic: a size that does not fit
    /// one array is an error here, never a wrapped int that native code then writes past.
    /// </summary>
    public static int BufferBytes(long width, long height, int channels)
    {
        if (width <= 0 || height <= 0) throw new InvalidDataException($"image size {width}×{height} is not positive");
        long bytes;
        try { bytes = checked(width * height * channels); }
        catch (OverflowException) { throw new ImageTooLargeException($"image of {width}×{height} pixels overflows 64 bits"); }
        if (bytes > Array.MaxLength)
            throw new ImageTooLargeException($"image of {width}×{height} pixels needs {bytes} bytes, more than one buffer holds");
        return (int)bytes;
    }

    /// <summary>An image whose header has been read; <see cref="Decode"/> produces its pixels, optionally at a reduced size.</summary>
    public sealed class EncodedImage : IDisposable
    {
        private readonly byte[] _encoded;
        private readonly SKData _data;
        private readonly SKCodec _codec;

        internal EncodedImage(byte[] encoded, long maxPixels)
        {
            _encoded = encoded;
            _data = SKData.CreateCopy(encoded);
            _codec = SKCodec.Create(_data);
            if (_codec is null)
            {
                _data.Dispose();
                throw new InvalidDataException("not a decodable image");
            }
            bool swap = Swaps(_codec.EncodedOrigin);
            (Width, Height) = swap ? (_codec.Info.Height, _codec.Info.Width) : (_codec.Info.Width, _codec.Info.Height);
            long pixels = (long)Width * Height;
            if (Width <= 0 || Height <= 0 || (maxPixels > 0 && pixels > maxPixels))
            {
                Dispose();
                throw Width <= 0 || Height <= 0
                    ? new InvalidDataException($"image header gives a size of {Width}×{Height}")
                    : new ImageTooLargeException($"image of {Width}×{Height} = {pixels:N0} pixels is over data.max_image_pixels ({maxPixels:N0}): " +
                                                 "skipped as a possible decompression bomb");
            }
        }

        /// <summary>Width as displayed (after EXIF orientation).</summary>
        public int Width { get; }

        /// <summary>Height as displayed (after EXIF orientation).</summary>
        public int Height { get; }

        /// <summary>
        /// Decodes at 1/<paramref name="shrink"/> of the size (1, 2, 4 or 8). JPEG decodes scaled in the DCT,
        /// skipping most of the work; a format that cannot scale while decoding comes back full size, so
        /// callers read the size from the result.
        /// </summary>
        public RgbImage Decode(int shrink = 1)
        {
            if (shrink is not (1 or 2 or 4 or 8)) throw new ArgumentOutOfRangeException(nameof(shrink), "1, 2, 4 or 8");
            if (_codec.EncodedFormat == SKEncodedImageFormat.Jpeg && TurboJpeg.TryDecode(_encoded, shrink) is { } rgb)
                return Orient(rgb.Width, rgb.Height, rgb.Pixels, 3, _codec.EncodedOrigin);
            var size = shrink == 1 ? _codec.Info.Size : _codec.GetScaledDimensions(1f / shrink);
            var (rgba, info, result) = GetPixels(_codec, size.Width, size.Height);
            if (result == SKCodecResult.IncompleteInput) throw new InvalidDataException("image data is truncated");
            if (result == SKCodecResult.InvalidScale && shrink != 1) return Decode(1);
            if (result != SKCodecResult.Success) throw new InvalidDataException($"image decode failed: {result}");
            return Orient(info.Width, info.Height, rgba, 4, _codec.EncodedOrigin);
        }

        public void Dispose()
        {
            _codec.Dispose();
            _data.Dispose();
        }
    }

    private static (byte[] Rgba, SKImageInfo Info, SKCodecResult Result) GetPixels(SKCodec codec, int width, int height)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[BufferBytes(width, height, 4)];
        if ((long)info.RowBytes * height != rgba.Length)
            throw new InvalidDataException($"image of {width}×{height}: unexpected row stride {info.RowBytes}");
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = rgba) result = codec.GetPixels(info, (IntPtr)p);
        }
        return (rgba, info, result);
    }

    private static bool Swaps(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>Keeps R, G, B of each pixel (<paramref name="channels"/> 3 or 4: alpha dropped) and applies the EXIF orientation
    /// (the eight cases of SKEncodedOrigin).</summary>
    private static RgbImage Orient(int w, int h, byte[] pixels, int channels, SKEncodedOrigin origin)
    {
        bool upright = origin is SKEncodedOrigin.TopLeft or SKEncodedOrigin.Default;
        if (upright && channels == 3) return new RgbImage(w, h, pixels);
        bool swap = Swaps(origin);
        int outW = swap ? h : w, outH = swap ? w : h;
        var rgb = new byte[outW * outH * 3];
        if (upright)
        {
            for (int src = 0, dst = 0; dst < rgb.Length; src += channels, dst += 3)
            {
                rgb[dst] = pixels[src];
                rgb[dst + 1] = pixels[src + 1];
                rgb[dst + 2] = pixels[src + 2];
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
                int src = (sy * w + sx) * channels, dst = (y * outW + x) * 3;
                rgb[dst] = pixels[src];
                rgb[dst + 1] = pixels[src + 1];
                rgb[dst + 2] = pixels[src + 2];
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
