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
}
