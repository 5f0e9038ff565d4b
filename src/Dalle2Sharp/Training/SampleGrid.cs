using Dalle2Sharp.Data;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>Real images on the top row, the decoder's images for the same embeddings below, as one PNG.</summary>
public static class SampleGrid
{
    public static void Save(string path, Tensor real, Tensor generated, int padding = 2)
    {
        using var scope = NewDisposeScope();
        long n = real.shape[0], size = generated.shape[2];
        // As upstream's generate_samples: real images resized to the generated size with resize-right.
        var realResized = Models.ResizeRight.Resize(real.to(float32), (int)size).clamp(0, 1);
        var rows = new[] { realResized, generated.to(float32) }.Select(t => cat(t.clamp(0, 1).unbind(0)
            .Select(img => nn.functional.pad(img, [padding, padding, padding, padding], value: 1.0)).ToArray(), 2));
        var grid = cat(rows.ToArray(), 1);
        long h = grid.shape[1], w = grid.shape[2];
        var pixels = Evaluation.DecoderEvaluator.ToUint8(grid).permute(1, 2, 0).contiguous().data<byte>().ToArray();
        var png = ImageDecoder.EncodePng(new RgbImage((int)w, (int)h, pixels));
        Runtime.AtomicFile.Write(path, s => s.Write(png));
    }

    /// <summary>
    /// Upstream's per-example image for loggers: torchvision's make_grid([real, generated]) — the two side by
    /// side with 2 px of zero padding — one PNG per example under <paramref name="folder"/> (rewritten each time).
    /// </summary>
    public static IReadOnlyList<Tracking.LoggedImage> SavePairs(string folder, Tensor real, Tensor generated, int padding = 2)
    {
        using var scope = NewDisposeScope();
        long n = real.shape[0], size = generated.shape[2];
        var realResized = Models.ResizeRight.Resize(real.to(float32), (int)size).clamp(0, 1);
        var images = new List<Tracking.LoggedImage>();
        for (int i = 0; i < n; i++)
        {
            var pair = cat(new[] { realResized[i], generated[i].to(float32).clamp(0, 1) }
                .Select(img => nn.functional.pad(img, [padding, padding, padding, padding], value: 0.0)).ToArray(), 2);
            // make_grid pads once between images: drop the doubled inner padding.
            pair = cat([pair[.., .., ..(int)(size + 2 * padding)], pair[.., .., (int)(size + 3 * padding)..]], 2);
            long h = pair.shape[1], w = pair.shape[2];
            var pixels = Evaluation.DecoderEvaluator.ToUint8(pair).permute(1, 2, 0).contiguous().data<byte>().ToArray();
            var path = Path.Combine(folder, $"{i}.png");
            var png = ImageDecoder.EncodePng(new RgbImage((int)w, (int)h, pixels));
            Runtime.AtomicFile.Write(path, s => s.Write(png));
            images.Add(new Tracking.LoggedImage(path, null, (int)w, (int)h));
        }
        return images;
    }
}
