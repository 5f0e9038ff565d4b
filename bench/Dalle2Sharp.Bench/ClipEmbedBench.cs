using System.Text.Json.Nodes;
using Dalle2Sharp.Clip;
using Dalle2Sharp.Data;
using static TorchSharp.torch;

namespace Dalle2Sharp.Bench;

/// <summary>
/// `clip-embed`: `dalle2 embed`'s throughput (decode + CLIP preprocessing + ViT-B/32 encode_image) on
/// generated shards, against openai/CLIP in PyTorch on the same shards, weights and threads
/// (bench/clip_embed_upstream.py; bench/clip-embed-side-by-side.sh alternates the two).
///   clip-embed prepare DIR        writes DIR/shards/{00000..}.tar (JPEG photos-like noise, 512² px) and a random ViT-B/32 DIR/ViT-B-32-random.pt
///   clip-embed run DIR [batch]    embeds DIR/shards into DIR/out-ours and reports images/s
/// </summary>
public static class ClipEmbedBench
{
    public const int Shards = 4, PerShard = 64, ImageSide = 512;

    /// <summary>ViT-B/32's shapes (random weights: throughput does not depend on their values).</summary>
    public static readonly ClipHyperparameters ViTB32 = new(EmbedDim: 512, ImageResolution: 224, VisionLayers: 12, VisionWidth: 768,
        VisionPatchSize: 32, ContextLength: 77, VocabSize: 49408, TransformerWidth: 512, TransformerHeads: 8, TransformerLayers: 12);

    public static JsonObject Run(string[] args)
    {
        string mode = args.ElementAtOrDefault(0) ?? throw new ArgumentException("clip-embed prepare DIR | run DIR [batch]");
        string dir = args.ElementAtOrDefault(1) ?? throw new ArgumentException("clip-embed needs a folder");
        return mode == "prepare" ? Prepare(dir) : Embed(dir, int.Parse(args.ElementAtOrDefault(2) ?? "32"));
    }

    private static JsonObject Prepare(string dir)
    {
        var shards = Directory.CreateDirectory(Path.Combine(dir, "shards")).FullName;
        var random = new Random(1);
        for (int s = 0; s < Shards; s++)
        {
            using var stream = File.Create(Path.Combine(shards, $"{s:D5}.tar"));
            using var tar = new System.Formats.Tar.TarWriter(stream, System.Formats.Tar.TarEntryFormat.Ustar);
            for (int i = 0; i < PerShard; i++)
            {
                // Smooth gradients plus noise: JPEG sizes like photographs', not flat colour.
                var pixels = new byte[ImageSide * ImageSide * 3];
                for (int p = 0; p < pixels.Length; p++) pixels[p] = (byte)((p / 3 % ImageSide + p / 3 / ImageSide * (i + 1)) % 256 ^ random.Next(32));
                string key = $"{s:D5}{i:D4}";
                tar.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, key + ".jpg")
                    { DataStream = new MemoryStream(ImageDecoder.EncodeJpeg(new RgbImage(ImageSide, ImageSide, pixels), 90)) });
                tar.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, key + ".txt")
                    { DataStream = new MemoryStream("a benchmark image"u8.ToArray()) });
            }
        }
        using var model = new ClipModel(ViTB32);
        var generator = new Generator(3);
        var sd = new System.Collections.Specialized.OrderedDictionary();
        foreach (var (key, value) in model.state_dict())
            sd[key] = key.Contains("ln_") && key.EndsWith("weight") ? ones_like(value) : randn(value.shape, generator: generator) * 0.02;
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(Path.Combine(dir, "ViT-B-32-random.pt"), sd);
        return new JsonObject { ["prepared"] = dir, ["shards"] = Shards, ["images"] = Shards * PerShard, ["side"] = ImageSide };
    }

    private static JsonObject Embed(string dir, int batch)
    {
        var outDir = Path.Combine(dir, "out-ours");
        if (Directory.Exists(outDir)) Directory.Delete(outDir, true);   // ours: written by the previous round of this benchmark
        using var model = ClipWeights.Build(Path.Combine(dir, "ViT-B-32-random.pt"));
        var embedder = new ClipEmbedder(model);
        double loadedPeak = Measure.PeakRssMb();
        var shards = ShardSpec.Urls(Path.Combine(dir, "shards", "{}.tar"), 0, Shards - 1, 5);
        var summary = ShardEmbedding.Run(embedder, new EmbedOptions
        {
            Shards = shards, OutFolder = outDir, ShardWidth = 5, IndexWidth = 4, BatchSize = batch, Workers = 1,
        }, new DataIssues(), _ => { });
        return new JsonObject
        {
            ["images"] = summary.Images, ["seconds"] = Math.Round(summary.Seconds, 2),
                ["images_per_second"] = Math.Round(summary.Images / summary.Seconds, 2),
            ["batch"] = batch, ["rss_mb"] = Math.Round(Measure.PeakRssMb()), ["rss_after_load_mb"] = Math.Round(loadedPeak),
        };
    }
}
