using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Data;

public class TransformTests
{
    private static RgbImage Gradient(int w, int h)
    {
        var px = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * 3;
                px[i] = (byte)(x * 255 / (w - 1));
                px[i + 1] = (byte)(y * 255 / (h - 1));
            }
        return new RgbImage(w, h, px);
    }

    private static PreprocessingConfig Steps(params TransformConfig[] steps)
    {
        var p = new PreprocessingConfig();
        p.Steps.AddRange(steps);
        return p;
    }

    [Fact]
    public void RandomResizedCropParamsFollowTorchvision()
    {
        var g = new Generator(seed: 0);
        for (int i = 0; i < 200; i++)
        {
            var (top, left, h, w) = ImageTransforms.RandomResizedCropParams(300, 400, [0.5, 1.0], [0.75, 4.0 / 3.0], g);
            Assert.InRange(h * w, 0.5 * 120000 * 0.98, 120000);
            Assert.InRange((double)w / h, 0.74, 1.35);
            Assert.True(top >= 0 && left >= 0 && top + h <= 300 && left + w <= 400);
        }
        // Unreachable ratio → centre-crop fallback with the closest ratio.
        // (area 1, ratio 0.5 would need 245×490 > 300 rows: every try fails; h = 300, w = round(300·0.5), centred.)
        Assert.Equal((0, 125, 300, 150), ImageTransforms.RandomResizedCropParams(300, 400, [1.0, 1.0], [0.5, 0.5], new Generator(seed: 1)));
    }

    [Fact]
    public void CropIsDeterministicForAGenerator()
    {
        var t = new ImageTransforms(Steps(new RandomResizedCropConfig { Size = 32, Scale = [0.3, 1.0] }, new RandomHorizontalFlipConfig(), new ToTensorConfig()));
        var img = Gradient(80, 60);
        var a = t.Apply(img, new Generator(seed: 5));
        Assert.Equal(new long[] { 3, 32, 32 }, a.shape);
        Assert.True(a.equal(t.Apply(img, new Generator(seed: 5))).all().item<bool>());
        Assert.False(a.equal(t.Apply(img, new Generator(seed: 6))).all().item<bool>());
    }

    [Fact]
    public void ResizeShorterSideAndCenterCropAsTorchvision()
    {
        var t = new ImageTransforms(Steps(new ResizeConfig { Size = 30 }, new CenterCropConfig { Size = 30 }, new ToTensorConfig()));
        var x = t.Apply(Gradient(90, 60));
        Assert.Equal(new long[] { 3, 30, 30 }, x.shape);
        // 90×60 → 45×30, then columns 8..37 (offset round(7.5) = 8, banker's rounding as Python's):
        // red runs from about 8/45 to 37/45.
        Assert.InRange(x[0, 15, 0].item<float>(), 0.15, 0.22);
        Assert.InRange(x[0, 15, 29].item<float>(), 0.80, 0.86);
        Assert.InRange(x[1, 0, 15].item<float>(), 0.0, 0.05);
        // Until ToTensor values are whole numbers (PIL's uint8), after it in [0, 1].
        Assert.True(((x * 255) - (x * 255).round()).abs().max().item<float>() < 1e-3);
    }

    [Fact]
    public void FlipWithProbabilityOneMirrors()
    {
        var t = new ImageTransforms(Steps(new RandomHorizontalFlipConfig { P = 1.0 }, new ToTensorConfig()));
        var x = t.Apply(Gradient(10, 4), new Generator(seed: 0));
        Assert.Equal(1.0f, x[0, 0, 0].item<float>());
        Assert.Equal(0.0f, x[0, 0, 9].item<float>());
    }
}
