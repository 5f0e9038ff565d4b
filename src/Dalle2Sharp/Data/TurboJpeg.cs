using System.Runtime.InteropServices;

namespace Dalle2Sharp.Data;

/// <summary>
/// JPEG decode through the system's libjpeg-turbo (TurboJPEG API, libturbojpeg.so.0, Debian/Ubuntu
/// package libturbojpeg0) when it is installed: it is built with SIMD, SkiaSharp's bundled copy is not,
/// and on photos that makes the decode 1.5–2.3× faster (bench/README). Both are libjpeg-turbo with the
/// same defaults (accurate integer IDCT, fancy upsampling), so the pixels are the same (tested); without
/// the library SkiaSharp decodes. The binding is written by hand because no NuGet package served here
/// wraps TurboJPEG; it is five functions, looked up at run time so a missing library is not an error.
/// </summary>
internal static unsafe class TurboJpeg
{
    private const int PixelFormatRgb = 0;
    private const int ColorspaceCmyk = 3, ColorspaceYcck = 4;

    private static readonly Api? Functions = Load();

    /// <summary>Whether libturbojpeg.so.0 was found and has the functions needed.</summary>
    public static bool Available => Functions is not null;

    private sealed class Api
    {
        public required delegate* unmanaged<nint> InitDecompress;
        public required delegate* unmanaged<nint, byte*, nuint, int*, int*, int*, int*, int> DecompressHeader3;
        public required delegate* unmanaged<nint, byte*, nuint, byte*, int, int, int, int, int, int> Decompress2;
        public required delegate* unmanaged<nint, int> Destroy;
    }

    private static Api? Load()
    {
        if (Environment.GetEnvironmentVariable("DALLE2_DISABLE_TURBOJPEG") == "1") return null;
        if (!NativeLibrary.TryLoad("libturbojpeg.so.0", out var lib)) return null;
        try
        {
            return new Api
            {
                InitDecompress = (delegate* unmanaged<nint>)NativeLibrary.GetExport(lib, "tjInitDecompress"),
                DecompressHeader3 = (delegate* unmanaged<nint, byte*, nuint, int*, int*, int*, int*, int>)
                    NativeLibrary.GetExport(lib, "tjDecompressHeader3"),
                Decompress2 = (delegate* unmanaged<nint, byte*, nuint, byte*, int, int, int, int, int, int>)
                    NativeLibrary.GetExport(lib, "tjDecompress2"),
                Destroy = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(lib, "tjDestroy"),
            };
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Decodes to RGB at 1/<paramref name="shrink"/> of the stored size (rounded up, as libjpeg scales),
    /// without EXIF orientation. Null when the library is missing, the image is CMYK/YCCK (libjpeg cannot
    /// convert it to RGB) or anything at all goes wrong, warnings included: the caller then decodes
    /// with SkiaSharp, which decides what a damaged file is.
    /// </summary>
    public static RgbImage? TryDecode(byte[] jpeg, int shrink)
    {
        var api = Functions;
        if (api is null) return null;
        nint handle = api.InitDecompress();
        if (handle == 0) return null;
        try
        {
            fixed (byte* source = jpeg)
            {
                int width, height, subsampling, colorspace;
                if (api.DecompressHeader3(handle, source, (nuint)jpeg.Length, &width, &height, &subsampling, &colorspace) != 0) return null;
                if (colorspace is ColorspaceCmyk or ColorspaceYcck) return null;
                if (width <= 0 || height <= 0) return null;
                int outWidth = (int)(((long)width + shrink - 1) / shrink), outHeight = (int)(((long)height + shrink - 1) / shrink);
                var pixels = new byte[ImageDecoder.BufferBytes(outWidth, outHeight, 3)];
                fixed (byte* destination = pixels)
                {
                    if (api.Decompress2(handle, source, (nuint)jpeg.Length, destination, outWidth, 0, outHeight, PixelFormatRgb, 0) != 0) return null;
                }
                return new RgbImage(outWidth, outHeight, pixels);
            }
        }
        finally
        {
            api.Destroy(handle);
        }
    }
}
