using Dalle2Sharp.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>
/// data.preprocessing with torchvision's semantics, drawing its random numbers from a given torch
/// generator (torchvision draws from the global one, which makes worker order matter). Upstream puts
/// ToTensor last, so its transforms act on PIL images: until ToTensor ours act on 8-bit RGB with
/// Pillow's resampling bit for bit (<see cref="Resampler"/>; PIL always antialiases, so `antialias`
/// only matters after ToTensor, where the tensor path of torchvision applies). The result is always a
/// float tensor [3, H, W] in [0, 1].
///
/// Reduced decode (ours, data.reduced_decode): when the first transform is a RandomResizedCrop or a
/// Resize, its parameters are drawn on the full-size header dimensions, then the JPEG is decoded at
/// the smallest DCT scale (1/2, 1/4, 1/8) that keeps the crop at least as large as the output, and the
/// crop box is scaled with it. The random draws, and so the crop geometry, are those of a full decode;
/// only the pixels come through the DCT's downscale before Pillow's filter.
/// </summary>
public sealed class ImageTransforms(PreprocessingConfig config, bool reducedDecode = true, long maxImagePixels = DataConfig.DefaultMaxImagePixels)
{
    /// <summary>
    /// What a RandomResizedCrop or Resize does to an image of a given size: crop, then resize to Width ×
    /// Height (Antialias only matters on the tensor path: Pillow always antialiases).
    /// </summary>
    private readonly record struct ResizePlan(PixelRect Crop, int Width, int Height, ResampleFilter Filter, bool Antialias);

    /// <summary>Decodes (see <see cref="ImageDecoder"/>) and transforms.</summary>
    public Tensor Apply(byte[] encoded, Generator? generator = null)
    {
        // The scope keeps every temporary (random draws included) referenced until the result is out: a
        // temporary that only native code still uses could otherwise be finalised mid-call by a GC on
        // another thread (data workers run concurrently).
        using var scope = NewDisposeScope();
        using var source = ImageDecoder.Open(encoded, maxImagePixels);
        var steps = config.Steps;
        var result = ReducesDecode(config, reducedDecode) && Plan(steps[0], source.Width, source.Height, generator) is { } plan
            ? Transform(ResizeFromReducedDecode(source, plan), steps.Skip(1), generator)
            : Transform(source.Decode(), steps, generator);
        return result.MoveToOuterDisposeScope();
    }

    public Tensor Apply(RgbImage image, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        return Transform(image, config.Steps, generator).MoveToOuterDisposeScope();
    }

    /// <summary>Whether a JPEG may be decoded at reduced size: the option is on and the first transform resizes.</summary>
    public static bool ReducesDecode(PreprocessingConfig config, bool reducedDecode) =>
        reducedDecode && config.Steps.Count > 0 && config.Steps[0] is RandomResizedCropConfig or ResizeConfig;

    /// <summary>The largest DCT shrink (8, 4, 2 or 1) that leaves the crop at least as large as the output in both directions.</summary>
    public static int DecodeShrink(int cropWidth, int cropHeight, int outWidth, int outHeight)
    {
        foreach (int shrink in new[] { 8, 4, 2 })
            if (cropWidth / shrink >= outWidth && cropHeight / shrink >= outHeight) return shrink;
        return 1;
    }

    private static RgbImage ResizeFromReducedDecode(ImageDecoder.EncodedImage source, ResizePlan plan)
    {
        int shrink = DecodeShrink(plan.Crop.Width, plan.Crop.Height, plan.Width, plan.Height);
        var image = source.Decode(shrink);
        if (image.Width == source.Width && image.Height == source.Height) return Resize(image, plan);
        // A DCT-scaled pixel i covers full-size pixels [i·k, (i+1)·k) (the size is rounded up, the last
        // block padded), so the box scales by 1/k exactly; any other decoder scales by its size ratio.
        // (In an EXIF-mirrored image the padded block ends up first: an offset under one decoded pixel.)
        double sx = image.Width == (source.Width + shrink - 1) / shrink ? 1.0 / shrink : (double)image.Width / source.Width;
        double sy = image.Height == (source.Height + shrink - 1) / shrink ? 1.0 / shrink : (double)image.Height / source.Height;
        var box = new SourceBox(plan.Crop.X * sx, plan.Crop.Y * sy, (plan.Crop.X + plan.Crop.Width) * sx, (plan.Crop.Y + plan.Crop.Height) * sy);
        int x0 = (int)Math.Floor(box.X0), y0 = (int)Math.Floor(box.Y0);
        int x1 = Math.Min((int)Math.Ceiling(box.X1), image.Width), y1 = Math.Min((int)Math.Ceiling(box.Y1), image.Height);
        return Resampler.Resize(image, new PixelRect(x0, y0, x1 - x0, y1 - y0),
            new SourceBox(box.X0 - x0, box.Y0 - y0, box.X1 - x0, box.Y1 - y0), plan.Width, plan.Height, plan.Filter);
    }

    private static RgbImage Resize(RgbImage image, ResizePlan plan) =>
        Resampler.Resize(image, plan.Crop, new SourceBox(0, 0, plan.Crop.Width, plan.Crop.Height), plan.Width, plan.Height, plan.Filter);

    private static ResizePlan? Plan(TransformConfig step, int width, int height, Generator? generator)
    {
        switch (step)
        {
            case RandomResizedCropConfig c:
            {
                var (top, left, h, w) = RandomResizedCropParams(height, width, c.Scale, c.Ratio, generator);
                var (oh, ow) = Size2(c.Size);
                return new ResizePlan(new PixelRect(left, top, w, h), ow, oh, Filter(c.Interpolation), c.Antialias);
            }
            case ResizeConfig r:
            {
                var (oh, ow) = ResizeTarget(height, width, r);
                return new ResizePlan(new PixelRect(0, 0, width, height), ow, oh, Filter(r.Interpolation), r.Antialias);
            }
            default:
                return null;
        }
    }

    private static ResampleFilter Filter(string interpolation) => interpolation switch
    {
        "bicubic" => ResampleFilter.Bicubic,
        "nearest" => ResampleFilter.Nearest,
        _ => ResampleFilter.Bilinear,
    };

    /// <summary>Steps up to ToTensor act on the 8-bit image (PIL's), the rest on the float tensor.</summary>
    private static Tensor Transform(RgbImage image, IEnumerable<TransformConfig> steps, Generator? generator)
    {
        using var enumerator = steps.GetEnumerator();
        while (enumerator.MoveNext())
        {
            var step = enumerator.Current;
            if (step is ToTensorConfig) break;
            image = step switch
            {
                RandomHorizontalFlipConfig f => Draw(generator) < f.P ? FlipHorizontal(image) : image,
                CenterCropConfig cc => CenterCrop(image, Size2(cc.Size)),
                RandomResizedCropConfig or ResizeConfig => Resize(image, Plan(step, image.Width, image.Height, generator)!.Value),
                _ => throw new NotSupportedException($"transform {step.Name}"),
            };
        }
        var x = ToTensor(image);
        while (enumerator.MoveNext()) x = TensorStep(x, enumerator.Current, generator);
        return x;
    }

    private static float Draw(Generator? generator) => rand(1, generator: generator).item<float>();

    /// <summary>byte / 255 in float32, as torchvision's ToTensor divides.</summary>
    private static readonly float[] UnitScale = Enumerable.Range(0, 256).Select(v => v / 255f).ToArray();

    /// <summary>torchvision's ToTensor: HWC bytes → CHW float in [0, 1].</summary>
    private static Tensor ToTensor(RgbImage image)
    {
        int plane = image.Width * image.Height;
        var data = new float[3 * plane];
        var px = image.Pixels;
        var scale = UnitScale;
        for (int p = 0, i = 0; p < plane; p++, i += 3)
        {
            data[p] = scale[px[i]];
            data[plane + p] = scale[px[i + 1]];
            data[2 * plane + p] = scale[px[i + 2]];
        }
        return tensor(data, [3, image.Height, image.Width]);
    }

    private static RgbImage FlipHorizontal(RgbImage image)
    {
        var px = new byte[image.Pixels.Length];
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                int s = (y * image.Width + x) * 3, d = (y * image.Width + image.Width - 1 - x) * 3;
                px[d] = image.Pixels[s];
                px[d + 1] = image.Pixels[s + 1];
                px[d + 2] = image.Pixels[s + 2];
            }
        return new RgbImage(image.Width, image.Height, px);
    }

    /// <summary>
    /// torchvision's CenterCrop geometry: zero padding (split as torchvision splits it) when the image is
    /// smaller than the crop, then offsets round((H − h) / 2) in the padded image, rounded as Python rounds.
    /// </summary>
    private static (int Top, int Bottom, int Left, int Right, PixelRect Crop) CenterCropLayout(int height, int width, (int H, int W) size)
    {
        int padH = Math.Max(0, size.H - height), padW = Math.Max(0, size.W - width);
        int top = (int)Math.Round((height + padH - size.H) / 2.0, MidpointRounding.ToEven);
        int left = (int)Math.Round((width + padW - size.W) / 2.0, MidpointRounding.ToEven);
        return (padH / 2, (padH + 1) / 2, padW / 2, (padW + 1) / 2, new PixelRect(left, top, size.W, size.H));
    }

    private static RgbImage CenterCrop(RgbImage image, (int H, int W) size)
    {
        var layout = CenterCropLayout(image.Height, image.Width, size);
        if (layout.Top + layout.Bottom + layout.Left + layout.Right > 0)
        {
            int h = image.Height + layout.Top + layout.Bottom, w = image.Width + layout.Left + layout.Right;
            var px = new byte[h * w * 3];
            for (int y = 0; y < image.Height; y++)
                Buffer.BlockCopy(image.Pixels, y * image.Width * 3, px, ((layout.Top + y) * w + layout.Left) * 3, image.Width * 3);
            image = new RgbImage(w, h, px);
        }
        return Resampler.Crop(image, layout.Crop);
    }

    /// <summary>A transform after ToTensor: torchvision's tensor path (torch's interpolate, antialias as configured).</summary>
    private static Tensor TensorStep(Tensor x, TransformConfig step, Generator? generator)
    {
        switch (step)
        {
            case RandomResizedCropConfig or ResizeConfig:
            {
                var plan = Plan(step, (int)x.shape[2], (int)x.shape[1], generator)!.Value;
                var crop = plan.Crop;
                return TensorResize(x[.., crop.Y..(crop.Y + crop.Height), crop.X..(crop.X + crop.Width)], plan);
            }
            case RandomHorizontalFlipConfig f:
                return Draw(generator) < f.P ? x.flip(-1) : x;
            case CenterCropConfig cc:
            {
                var layout = CenterCropLayout((int)x.shape[1], (int)x.shape[2], Size2(cc.Size));
                if (layout.Top + layout.Bottom + layout.Left + layout.Right > 0)
                    x = nn.functional.pad(x, [layout.Left, layout.Right, layout.Top, layout.Bottom]);
                var crop = layout.Crop;
                return x[.., crop.Y..(crop.Y + crop.Height), crop.X..(crop.X + crop.Width)];
            }
            default:
                return x;
        }
    }

    /// <summary>
    /// torchvision's RandomResizedCrop.get_params, draw for draw: 10 tries of a float32 uniform area
    /// fraction × exp(float32 uniform log-ratio), rounded half to even as Python rounds, then randint
    /// offsets; a centre-crop fallback. With a generator seeded as torch.manual_seed the crops are
    /// upstream's.
    /// </summary>
    public static (int Top, int Left, int Height, int Width) RandomResizedCropParams(long height, long width, IReadOnlyList<double> scale,
        IReadOnlyList<double> ratio, Generator? generator)
    {
        double area = height * width;
        var logRatio = log(tensor(new[] { (float)ratio[0], (float)ratio[1] }));
        double logLo = logRatio[0].item<float>(), logHi = logRatio[1].item<float>();
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double targetArea = area * empty(1).uniform_(scale[0], scale[1], generator).item<float>();
            double aspect = exp(empty(1).uniform_(logLo, logHi, generator)).item<float>();
            int w = (int)Math.Round(Math.Sqrt(targetArea * aspect), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(targetArea / aspect), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                int top = (int)randint(0, height - h + 1, [1], generator: generator).item<long>();
                int left = (int)randint(0, width - w + 1, [1], generator: generator).item<long>();
                return (top, left, h, w);
            }
        }
        double inRatio = (double)width / height;
        int fw, fh;
        if (inRatio < ratio.Min()) { fw = (int)width; fh = (int)Math.Round(fw / ratio.Min(), MidpointRounding.ToEven); }
        else if (inRatio > ratio.Max()) { fh = (int)height; fw = (int)Math.Round(fh * ratio.Max(), MidpointRounding.ToEven); }
        else { fw = (int)width; fh = (int)height; }
        return ((int)(height - fh) / 2, (int)(width - fw) / 2, fh, fw);
    }

    private static (int H, int W) Size2(ScalarOrList<int> size) =>
        size.IsList && size.List!.Count == 2 ? (size.List[0], size.List[1]) : (size.At(0), size.At(0));

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

    private static Tensor TensorResize(Tensor x, ResizePlan plan)
    {
        if (x.shape[1] == plan.Height && x.shape[2] == plan.Width) return x;
        var mode = plan.Filter switch
        {
            ResampleFilter.Bicubic => InterpolationMode.Bicubic,
            ResampleFilter.Nearest => InterpolationMode.Nearest,
            _ => InterpolationMode.Bilinear
        };
        return nn.functional.interpolate(x.unsqueeze(0), size: [plan.Height, plan.Width], mode: mode,
            align_corners: mode == InterpolationMode.Nearest ? null : false,
            antialias: plan.Antialias && mode != InterpolationMode.Nearest).squeeze(0).clamp(0, 1);
    }
}
