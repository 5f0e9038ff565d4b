using Dalle2Sharp.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>
/// data.preprocessing with torchvision's semantics, drawing its random numbers from a given torch
/// generator (torchvision draws from the global one, which makes worker order matter). Until
/// ToTensor the image is kept in the 0–255 range and rounded after each resize, as PIL's uint8
/// images are; ToTensor maps it to [0, 1]. The result is always a float tensor [3, H, W].
/// </summary>
public sealed class ImageTransforms(PreprocessingConfig config)
{
    public Tensor Apply(RgbImage image, Generator? generator = null)
    {
        // The scope keeps every temporary referenced until the result is out: a temporary that only
        // native code still uses could otherwise be finalised mid-call by a GC on another thread.
        using var scope = NewDisposeScope();
        return Transform(ToTensor(image), config.Steps, generator).MoveToOuterDisposeScope();
    }

    /// <summary>Decodes (see <see cref="ImageDecoder"/>) and transforms.</summary>
    public Tensor Apply(byte[] encoded, Generator? generator = null) => Apply(ImageDecoder.Decode(encoded), generator);

    private static Tensor ToTensor(RgbImage image) =>
        tensor(image.Pixels, dtype: ScalarType.Byte).reshape(image.Height, image.Width, 3).permute(2, 0, 1).to(float32);

    /// <summary>Crop (drawn on this very image, so always inside it), then resize to the transform's size.</summary>
    private static Tensor Crop(Tensor x, (int Top, int Left, int Height, int Width) crop, RandomResizedCropConfig c, bool scaled)
    {
        var (oh, ow) = Size2(c.Size);
        return Resize(x[.., crop.Top..(crop.Top + crop.Height), crop.Left..(crop.Left + crop.Width)], oh, ow, c.Interpolation, c.Antialias, scaled);
    }

    private static Tensor Transform(Tensor x, IEnumerable<TransformConfig> steps, Generator? generator)
    {
        bool scaled = false;
        foreach (var step in steps)
        {
            switch (step)
            {
                case RandomResizedCropConfig c:
                    x = Crop(x, RandomResizedCropParams(x.shape[1], x.shape[2], c.Scale, c.Ratio, generator), c, scaled);
                    break;
                case RandomHorizontalFlipConfig f:
                    if (rand(1, generator: generator).item<float>() < f.P) x = x.flip(-1);
                    break;
                case ResizeConfig r:
                {
                    var (oh, ow) = ResizeTarget(x.shape[1], x.shape[2], r);
                    x = Resize(x, oh, ow, r.Interpolation, r.Antialias, scaled);
                    break;
                }
                case CenterCropConfig cc:
                    x = CenterCrop(x, Size2(cc.Size));
                    break;
                case ToTensorConfig:
                    if (!scaled) { x = x / 255f; scaled = true; }
                    break;
            }
        }
        return scaled ? x : x / 255f;
    }

    /// <summary>torchvision's RandomResizedCrop.get_params: 10 tries of area × log-uniform ratio, then a centre-crop fallback.</summary>
    public static (int Top, int Left, int Height, int Width) RandomResizedCropParams(long height, long width, IReadOnlyList<double> scale, IReadOnlyList<double> ratio, Generator? generator)
    {
        double area = height * width;
        double logLo = Math.Log(ratio[0]), logHi = Math.Log(ratio[1]);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double targetArea = area * Uniform(scale[0], scale[1], generator);
            double aspect = Math.Exp(Uniform(logLo, logHi, generator));
            int w = (int)Math.Round(Math.Sqrt(targetArea * aspect));
            int h = (int)Math.Round(Math.Sqrt(targetArea / aspect));
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                int top = (int)randint(0, height - h + 1, [1], generator: generator).item<long>();
                int left = (int)randint(0, width - w + 1, [1], generator: generator).item<long>();
                return (top, left, h, w);
            }
        }
        double inRatio = (double)width / height;
        int fw, fh;
        if (inRatio < ratio.Min()) { fw = (int)width; fh = (int)Math.Round(fw / ratio.Min()); }
        else if (inRatio > ratio.Max()) { fh = (int)height; fw = (int)Math.Round(fh * ratio.Max()); }
        else { fw = (int)width; fh = (int)height; }
        return ((int)(height - fh) / 2, (int)(width - fw) / 2, fh, fw);
    }

    private static double Uniform(double lo, double hi, Generator? generator) =>
        lo + (hi - lo) * rand(1, dtype: float64, generator: generator).item<double>();

    private static (int H, int W) Size2(ScalarOrList<int> size) => size.IsList && size.List!.Count == 2 ? (size.List[0], size.List[1]) : (size.At(0), size.At(0));

    /// <summary>torchvision Resize: one number resizes the shorter side (aspect kept, max_size caps the longer).</summary>
    private static (int H, int W) ResizeTarget(long h, long w, ResizeConfig r)
    {
        if (r.Size.IsList && r.Size.List!.Count == 2) return (r.Size.List[0], r.Size.List[1]);
        int size = r.Size.At(0);
        bool portrait = h > w;
        long shortSide = Math.Min(h, w), longSide = Math.Max(h, w);
        int newShort = size, newLong = (int)(size * longSide / (double)shortSide);
        if (r.MaxSize is { } max && newLong > max) { newShort = (int)(max * newShort / (double)newLong); newLong = max; }
        return portrait ? (newLong, newShort) : (newShort, newLong);
    }

    private static Tensor Resize(Tensor x, int h, int w, string interpolation, bool antialias, bool scaled)
    {
        if (x.shape[1] == h && x.shape[2] == w) return x;
        var mode = interpolation switch { "bicubic" => InterpolationMode.Bicubic, "nearest" => InterpolationMode.Nearest, _ => InterpolationMode.Bilinear };
        var y = nn.functional.interpolate(x.unsqueeze(0), size: [h, w], mode: mode,
            align_corners: mode == InterpolationMode.Nearest ? null : false, antialias: antialias && mode != InterpolationMode.Nearest).squeeze(0);
        // Before ToTensor the image stands for PIL's uint8 image: round and clamp like it.
        return scaled ? y.clamp(0, 1) : y.round().clamp(0, 255);
    }

    /// <summary>torchvision CenterCrop: offsets round((H − h)/2); pads with zeros when the image is smaller.</summary>
    private static Tensor CenterCrop(Tensor x, (int H, int W) size)
    {
        long h = x.shape[1], w = x.shape[2];
        if (size.H > h || size.W > w)
        {
            long padH = Math.Max(0, size.H - h), padW = Math.Max(0, size.W - w);
            x = nn.functional.pad(x, [padW / 2, (padW + 1) / 2, padH / 2, (padH + 1) / 2]);
            h = x.shape[1];
            w = x.shape[2];
        }
        int top = (int)Math.Round((h - size.H) / 2.0, MidpointRounding.ToEven), left = (int)Math.Round((w - size.W) / 2.0, MidpointRounding.ToEven);
        return x[.., top..(top + size.H), left..(left + size.W)];
    }
}
