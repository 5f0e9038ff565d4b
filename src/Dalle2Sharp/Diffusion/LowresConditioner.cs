using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Diffusion;

/// <summary>
/// Makes the low-resolution conditioning image of an upsampler unet: nearest downsample to the
/// previous unet's size, optional Gaussian blur (training), nearest resize to this unet's size,
/// and optional noise augmentation with its own linear 1000-step schedule (Imagen-style).
/// </summary>
public sealed class LowresConditioner : nn.Module
{
    private readonly NoiseScheduler? noise_scheduler;
    private readonly bool downsampleFirst, useBlur, autoNormalize;
    private readonly double blurProb;
    private readonly (double Low, double High) blurSigma;
    private readonly (int Low, int High) blurKernelSize;

    public bool UseNoise => noise_scheduler is not null;

    public LowresConditioner(bool downsampleFirst, bool useBlur, bool useNoise, double blurProb,
                             (double, double) blurSigma, (int, int) blurKernelSize, bool autoNormalize = true) : base(nameof(LowresConditioner))
    {
        this.autoNormalize = autoNormalize;
        this.downsampleFirst = downsampleFirst;
        this.useBlur = useBlur;
        this.blurProb = blurProb;
        this.blurSigma = blurSigma;
        this.blurKernelSize = blurKernelSize;
        if (useNoise) noise_scheduler = new NoiseScheduler("linear", 1000, "l2");
        RegisterComponents();
    }

    /// <summary>
    /// <paramref name="image"/> is in the decoder's input range ([0, 1], or [-1, 1] without
    /// auto_normalize_img). Returns the conditioning image in that range and, with noise augmentation,
    /// the noise levels (given, or drawn uniformly in [0, 1000)). As upstream: each resize clamps to the
    /// input range (a resize to the same size is skipped and clamps nothing), the noised image is not clamped.
    /// </summary>
    public (Tensor Image, Tensor? NoiseLevel) forward(Tensor image, int targetSize, int downsampleSize, bool training,
                                                      long? fixedNoiseLevel = null, Generator? generator = null)
    {
        if (downsampleFirst) image = ResizeNearest(image, downsampleSize, InputRange);
        // Draws on the image's device: the generator lives there.
        if (training && useBlur && rand(1, generator: generator, device: image.device).item<float>() < blurProb)
        {
            double sigma = blurSigma.Low == blurSigma.High ? blurSigma.Low
                : blurSigma.Low + (blurSigma.High - blurSigma.Low)
                    * rand(1, generator: generator, dtype: float64, device: image.device).item<double>();
            int kernel = blurKernelSize.Low == blurKernelSize.High ? blurKernelSize.Low
                : (int)randint(blurKernelSize.Low, blurKernelSize.High + 1, [1], generator: generator, device: image.device).item<long>();
            image = GaussianBlur(image, kernel, sigma);
        }
        image = ResizeNearest(image, targetSize, InputRange);
        if (noise_scheduler is null) return (image, null);

        long b = image.shape[0];
        var levels = fixedNoiseLevel is { } level
            ? full(b, level, dtype: int64, device: image.device)
            : randint(0, noise_scheduler.NumTimesteps, [b], dtype: int64, device: image.device, generator: generator);
        return (NoiseImage(image, levels, randn(image.shape, device: image.device, generator: generator)), levels);
    }

    /// <summary>Upstream's noise_image: normalise (only with auto_normalize_img), q_sample at the levels, unnormalise; no clamp.</summary>
    public Tensor NoiseImage(Tensor image, Tensor levels, Tensor noise)
    {
        var normalized = autoNormalize ? image * 2 - 1 : image;
        var noised = noise_scheduler!.QSample(normalized, levels, noise);
        return autoNormalize ? (noised + 1) * 0.5 : noised;
    }

    private (double Low, double High) InputRange => autoNormalize ? (0, 1) : (-1, 1);

    /// <summary>F.interpolate(mode='nearest') to a square size; identity when already that size.</summary>
    public static Tensor ResizeNearest(Tensor image, int size) =>
        image.shape[^1] == size && image.shape[^2] == size
            ? image
            : nn.functional.interpolate(image, size: [size, size], mode: InterpolationMode.Nearest);

    /// <summary>Upstream's resize_image_to(nearest, clamp_range): a resize clamps, the same size returns the image as it is.</summary>
    public static Tensor ResizeNearest(Tensor image, int size, (double Low, double High) clampRange) =>
        image.shape[^1] == size ? image : ResizeNearest(image, size).clamp(clampRange.Low, clampRange.High);

    /// <summary>Separable normalised Gaussian blur with reflect padding (kornia's gaussian_blur2d).</summary>
    public static Tensor GaussianBlur(Tensor image, int kernelSize, double sigma)
    {
        long c = image.shape[1];
        var x = arange(kernelSize, dtype: float64, device: image.device) - (kernelSize - 1) / 2.0;
        var k1 = (-(x.square()) / (2 * sigma * sigma)).exp();
        k1 = (k1 / k1.sum()).to(image.dtype);
        int pad = kernelSize / 2;
        var padded = nn.functional.pad(image, [pad, pad, pad, pad], PaddingModes.Reflect);
        var horizontal = k1.reshape(1, 1, 1, kernelSize).expand(c, 1, 1, kernelSize);
        var vertical = k1.reshape(1, 1, kernelSize, 1).expand(c, 1, kernelSize, 1);
        return nn.functional.conv2d(nn.functional.conv2d(padded, horizontal, groups: c), vertical, groups: c);
    }
}
