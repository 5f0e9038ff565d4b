using System.Text.Json.Nodes;
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
    public void AfterToTensorTheTensorPathGivesWhatThePilPathGives()
    {
        // torch's antialiased interpolate follows Pillow's filter; only Pillow's uint8 rounding differs.
        var img = Gradient(90, 60);
        var beforeToTensor = new ImageTransforms(Steps(new ResizeConfig { Size = 30 }, new CenterCropConfig { Size = new[] { 34, 24 } }, new ToTensorConfig())).Apply(img);
        var afterToTensor = new ImageTransforms(Steps(new ToTensorConfig(), new ResizeConfig { Size = 30 }, new CenterCropConfig { Size = new[] { 34, 24 } })).Apply(img);
        Assert.Equal(new long[] { 3, 34, 24 }, afterToTensor.shape);
        Assert.True((beforeToTensor - afterToTensor).abs().max().item<float>() <= 2 / 255f);
        // The crop drawn on the tensor is the crop drawn on the image (same generator, same draws).
        var crop = Steps(new RandomResizedCropConfig { Size = 16, Scale = [0.3, 1.0] }, new ToTensorConfig());
        var cropAfter = Steps(new ToTensorConfig(), new RandomResizedCropConfig { Size = 16, Scale = [0.3, 1.0] });
        var a = new ImageTransforms(crop).Apply(img, new Generator(seed: 4));
        var b = new ImageTransforms(cropAfter).Apply(img, new Generator(seed: 4));
        Assert.True((a - b).abs().max().item<float>() <= 2 / 255f);
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

/// <summary>The reduced (DCT-scaled) JPEG decode before the first resize, on the upstream test photos.</summary>
public class ReducedDecodeTests
{
    private static List<byte[]> Photos()
    {
        var issues = new DataIssues();
        string tar = Path.Combine(TestPaths.Shared, "data", "upstream-test-shards", "0.tar");
        return WebDatasetReader.Read(File.OpenRead(tar), tar, issues).Select(s => s.Files["jpg"]).ToList();
    }

    private static PreprocessingConfig Steps(params TransformConfig[] steps)
    {
        var p = new PreprocessingConfig();
        p.Steps.AddRange(steps);
        return p;
    }

    [Theory]
    [InlineData(400, 400, 64, 64, 4)]
    [InlineData(520, 512, 64, 64, 8)]
    [InlineData(511, 600, 64, 64, 4)]
    [InlineData(300, 200, 256, 256, 1)]
    [InlineData(520, 1100, 256, 256, 2)]
    public void ShrinkKeepsTheCropAtLeastAsLargeAsTheOutput(int cropW, int cropH, int outW, int outH, int expected) =>
        Assert.Equal(expected, ImageTransforms.DecodeShrink(cropW, cropH, outW, outH));

    [Fact]
    public void DecodingAtAQuarterGivesAQuarterOfTheSize()
    {
        using var image = ImageDecoder.Open(Photos()[3]);
        var quarter = image.Decode(4);
        Assert.Equal(((image.Width + 3) / 4, (image.Height + 3) / 4), (quarter.Width, quarter.Height));
    }

    [Theory]
    [InlineData(64, "bilinear")]
    [InlineData(32, "bicubic")]
    public void SameCropsAndPixelsAsCloseAsSwappingTheFilter(int size, string interpolation)
    {
        // Beside a full decode, the reduced decode may differ by about as much as choosing the other
        // filter does (measured: mean |Δ| 0.0055 vs 0.0073 at 64 px bilinear). A box off by a few pixels,
        // a missed flip or other draws would differ by far more.
        PreprocessingConfig With(string filter) => Steps(
            new RandomResizedCropConfig { Size = size, Scale = [0.75, 1.0], Ratio = [1.0, 1.0], Interpolation = filter },
            new RandomHorizontalFlipConfig(), new ToTensorConfig());
        var reduced = new ImageTransforms(With(interpolation), reducedDecode: true);
        var full = new ImageTransforms(With(interpolation), reducedDecode: false);
        var otherFilter = new ImageTransforms(With(interpolation == "bilinear" ? "bicubic" : "bilinear"), reducedDecode: false);
        double reducedDelta = 0, filterDelta = 0;
        var photos = Photos();
        foreach (var photo in photos)
        {
            var exact = full.Apply(photo, new Generator(seed: 3));
            var a = reduced.Apply(photo, new Generator(seed: 3));
            Assert.Equal(exact.shape, a.shape);
            reducedDelta += (a - exact).abs().mean().item<float>() / photos.Count;
            filterDelta += (otherFilter.Apply(photo, new Generator(seed: 3)) - exact).abs().mean().item<float>() / photos.Count;
        }
        Assert.InRange(reducedDelta, 0, 1.25 * filterDelta);
    }

    [Fact]
    public void WithoutReducedDecodeTheCropEqualsPillowsOnTheFullImage()
    {
        // Full decode + crop + Resampler equals the 8-bit pipeline applied to the decoded image.
        var photo = Photos()[6];
        var steps = Steps(new RandomResizedCropConfig { Size = 48, Scale = [0.5, 1.0] }, new ToTensorConfig());
        var viaBytes = new ImageTransforms(steps, reducedDecode: false).Apply(photo, new Generator(seed: 9));
        var viaImage = new ImageTransforms(steps).Apply(ImageDecoder.Decode(photo), new Generator(seed: 9));
        Assert.True(viaBytes.equal(viaImage).all().item<bool>());
    }
}

/// <summary>
/// Against upstream's image path itself: Vectors/upstream-transforms.json holds, for each photo of the
/// upstream test shard 0, the output of PIL decode + torchvision transforms + ToTensor after
/// torch.manual_seed(seed) (made by Vectors/make_upstream_transforms.py with torch 1.13 / torchvision 0.14).
/// </summary>
public class UpstreamTransformParityTests
{
    private static readonly JsonObject Vectors = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "Vectors", "upstream-transforms.json")))!.AsObject();

    private static PreprocessingConfig Pipeline(string name)
    {
        var p = new PreprocessingConfig();
        switch (name)
        {
            case "rrc24_flip":
                p.Steps.Add(new RandomResizedCropConfig { Size = 24, Scale = [0.5, 1.0] });
                p.Steps.Add(new RandomHorizontalFlipConfig());
                break;
            case "rrc20x28_bicubic":
                p.Steps.Add(new RandomResizedCropConfig { Size = new[] { 20, 28 }, Scale = [0.3, 1.0], Interpolation = "bicubic" });
                break;
            case "resize30_centercrop24":
                p.Steps.Add(new ResizeConfig { Size = 30 });
                p.Steps.Add(new CenterCropConfig { Size = 24 });
                break;
        }
        p.Steps.Add(new ToTensorConfig());
        return p;
    }

    public static TheoryData<string> Pipelines() => new() { "rrc24_flip", "rrc20x28_bicubic", "resize30_centercrop24" };

    [Theory]
    [MemberData(nameof(Pipelines))]
    public void FullDecodeEqualsUpstreamBitForBit(string pipeline)
    {
        string tar = Path.Combine(TestPaths.Shared, "data", "upstream-test-shards", "0.tar");
        var photos = WebDatasetReader.Read(File.OpenRead(tar), tar, new DataIssues()).ToDictionary(s => s.Key, s => s.Files["jpg"]);
        var transforms = new ImageTransforms(Pipeline(pipeline), reducedDecode: false);
        int compared = 0;
        foreach (var c in Vectors["cases"]!.AsArray().Where(c => (string)c!["pipeline"]! == pipeline))
        {
            var x = transforms.Apply(photos[(string)c!["key"]!], new Generator(seed: (ulong)c["seed"]!));
            Assert.Equal(c["shape"]!.AsArray().Select(v => (long)v!).ToArray(), x.shape);
            var expected = Convert.FromBase64String((string)c["pixels"]!);
            var actual = (x * 255).round().to(ScalarType.Byte).data<byte>().ToArray();
            int differing = expected.Zip(actual).Count(p => p.First != p.Second);
            Assert.True(differing == 0, $"{c["key"]}: {differing} of {expected.Length} values differ from upstream's");
            compared++;
        }
        Assert.Equal(7, compared);
    }
}

/// <summary>
/// The SIMD decode through libturbojpeg.so.0 (used when installed; .ci/run installs libturbojpeg0)
/// gives the pixels SkiaSharp's decode gives, at every scale, and EXIF orientation still applies.
/// </summary>
public class JpegBackendTests
{
    private const string NoTurboJpeg = "libturbojpeg.so.0 is not installed (apt-get install libturbojpeg0; .ci/run installs it): SkiaSharp decodes every JPEG";

    [SkippableFact]
    public void TurboJpegAndSkiaDecodeTheSamePixels()
    {
        Assert.Equal(TurboJpeg.Available, ImageDecoder.JpegBackend.StartsWith("libjpeg-turbo with SIMD"));
        Skip.IfNot(TurboJpeg.Available, NoTurboJpeg);
        string tar = Path.Combine(TestPaths.Shared, "data", "upstream-test-shards", "0.tar");
        foreach (var sample in WebDatasetReader.Read(File.OpenRead(tar), tar, new DataIssues()))
        {
            var jpeg = sample.Files["jpg"];
            foreach (int shrink in new[] { 1, 2, 4, 8 })
            {
                var turbo = TurboJpeg.TryDecode(jpeg, shrink)!;
                var skia = SkiaDecode(jpeg, shrink);
                Assert.Equal((skia.Width, skia.Height), (turbo.Width, turbo.Height));
                Assert.True(skia.Pixels.AsSpan().SequenceEqual(turbo.Pixels), $"{sample.Key} at 1/{shrink}");
            }
        }
    }

    [SkippableFact]
    public void DamagedOrCmykJpegsAreLeftToSkia()
    {
        Skip.IfNot(TurboJpeg.Available, NoTurboJpeg);
        var jpeg = ImageDecoder.EncodeJpeg(new RgbImage(16, 16, new byte[16 * 16 * 3]));
        Assert.Null(TurboJpeg.TryDecode(jpeg[..(jpeg.Length / 2)], 1)); // truncated: a warning is enough to decline
        Assert.Null(TurboJpeg.TryDecode([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 1], 1));
        Assert.Throws<InvalidDataException>(() => ImageDecoder.Decode(jpeg[..(jpeg.Length / 2)]));
    }

    private static RgbImage SkiaDecode(byte[] jpeg, int shrink)
    {
        using var data = SkiaSharp.SKData.CreateCopy(jpeg);
        using var codec = SkiaSharp.SKCodec.Create(data);
        var size = codec.GetScaledDimensions(1f / shrink);
        using var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(size.Width, size.Height, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Unpremul));
        Assert.Equal(SkiaSharp.SKCodecResult.Success, codec.GetPixels(bitmap.Info, bitmap.GetPixels()));
        var rgba = bitmap.Bytes;
        var rgb = new byte[size.Width * size.Height * 3];
        for (int i = 0, j = 0; i < rgb.Length; i += 3, j += 4) (rgb[i], rgb[i + 1], rgb[i + 2]) = (rgba[j], rgba[j + 1], rgba[j + 2]);
        return new RgbImage(size.Width, size.Height, rgb);
    }
}
