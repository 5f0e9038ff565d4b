using System.Text.Json.Nodes;
using Dalle2Sharp.Data;

namespace Dalle2Sharp.Tests.Data;

/// <summary>
/// Against Pillow itself: Vectors/pil-resample.json holds a noisy 41×29 image and Pillow's resize /
/// box resize / torchvision resized_crop of it (made by Vectors/make_pil_resample.py).
/// </summary>
public class ResamplerTests
{
    private static readonly JsonObject Vectors = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "Vectors", "pil-resample.json")))!.AsObject();

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Vectors["cases"]!.AsArray()) data.Add((string)c!["name"]!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EqualsPillowBitForBit(string name)
    {
        var source = new RgbImage((int)Vectors["width"]!, (int)Vectors["height"]!, Convert.FromBase64String((string)Vectors["source"]!));
        var c = Vectors["cases"]!.AsArray().Single(x => (string)x!["name"]! == name)!;
        var filter = Enum.Parse<ResampleFilter>((string)c["filter"]!, ignoreCase: true);
        int width = (int)c["width"]!, height = (int)c["height"]!;
        RgbImage result;
        if (c["crop"] is JsonArray crop)
        {
            // torchvision's resized_crop(top, left, height, width): crop, then resize the crop.
            var window = new PixelRect((int)crop[1]!, (int)crop[0]!, (int)crop[3]!, (int)crop[2]!);
            result = Resampler.Resize(source, window, new SourceBox(0, 0, window.Width, window.Height), width, height, filter);
        }
        else
        {
            var b = c["box"]!.AsArray().Select(v => (double)v!).ToArray();
            result = Resampler.Resize(source, new PixelRect(0, 0, source.Width, source.Height), new SourceBox(b[0], b[1], b[2], b[3]), width, height, filter);
        }
        var expected = Convert.FromBase64String((string)c["pixels"]!);
        Assert.Equal((width, height), (result.Width, result.Height));
        int differing = expected.Zip(result.Pixels).Count(p => p.First != p.Second);
        Assert.True(differing == 0, $"{name}: {differing} of {expected.Length} values differ from Pillow's");
    }

    [Fact]
    public void ThePlainLoopsGiveWhatTheVectorLoopsGive()
    {
        var source = new RgbImage(301, 203, Enumerable.Range(0, 301 * 203 * 3).Select(i => (byte)(i * 7919 % 251)).ToArray());
        var cases = new[] { (64, 48, ResampleFilter.Bilinear), (255, 17, ResampleFilter.Bicubic), (400, 300, ResampleFilter.Bicubic), (33, 190, ResampleFilter.Bilinear) };
        foreach (var (w, h, filter) in cases)
        {
            var vectors = Resampler.Resize(source, w, h, filter);
            Resampler.UseIntrinsics = false;
            try { Assert.Equal(vectors.Pixels, Resampler.Resize(source, w, h, filter).Pixels); }
            finally { Resampler.UseIntrinsics = true; }
        }
    }

    [Fact]
    public void AWindowIsResampledAsIfCroppedOut()
    {
        var source = new RgbImage((int)Vectors["width"]!, (int)Vectors["height"]!, Convert.FromBase64String((string)Vectors["source"]!));
        var window = new PixelRect(4, 2, 20, 15);
        var viaWindow = Resampler.Resize(source, window, new SourceBox(0, 0, 20, 15), 7, 9, ResampleFilter.Bicubic);
        var viaCrop = Resampler.Resize(Resampler.Crop(source, window), 7, 9, ResampleFilter.Bicubic);
        Assert.Equal(viaCrop.Pixels, viaWindow.Pixels);
    }
}
