using System.Diagnostics;
using System.Formats.Tar;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using TorchSharp;

namespace Dalle2Sharp.Bench;

/// <summary>
/// Input pipeline throughput: tar → decode → RandomResizedCrop (scale 0.75–1, ratio 1) → ToTensor →
/// batch of 16, at 64 and 256 px, with 1 and 2 workers, torch limited to 1 thread, with and without
/// the reduced (DCT-scaled) decode, on two sets of 490 samples: the upstream test photos as they are
/// (123–535 px JPEGs, baseline and progressive) and "large" versions of them (longer side 1024 px,
/// bicubic upscale plus mild noise so they compress like photos, q90). The shards are written to
/// [dir]/upstream and [dir]/large; `bench/upstream_data_baseline.py [dir]` times upstream's path
/// (PIL + torchvision) on the same files.
/// </summary>
public static class DataBench
{
    private const int Shards = 7, PerShard = 70;

    public static JsonObject Run(string[] args)
    {
        string source = args.Length > 0 ? args[0] : "../shared/data/upstream-test-shards/0.tar";
        string dir = args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "dalle2-data-bench");
        var photos = ReadPhotos(source);
        var sets = new Dictionary<string, List<(byte[] Jpg, byte[] Txt)>>
        {
            ["upstream"] = photos,
            ["large"] = photos.Select((p, i) => (Enlarge(p.Jpg, 1024, seed: i), p.Txt)).ToList(),
        };
        torch.set_num_threads(1);
        var results = new JsonArray();
        var decodeOnly = new JsonArray();
        foreach (var (name, set) in sets)
        {
            string setDir = Path.Combine(dir, name);
            WriteShards(setDir, set);
            // The floor under any pipeline: decoding alone, one thread, at full size and at 1/8.
            foreach (int shrink in new[] { 1, 8 })
                decodeOnly.Add(new JsonObject { ["photos"] = name, ["shrink"] = shrink, ["images_per_second"] = Math.Round(DecodesPerSecond(set, shrink), 1) });
            foreach (int size in new[] { 64, 256 })
                foreach (bool reduced in new[] { false, true })
                    foreach (int workers in new[] { 1, 2 })
                        results.Add(new JsonObject
                        {
                            ["photos"] = name,
                            ["size"] = size,
                            ["reduced_decode"] = reduced,
                            ["workers"] = workers,
                            ["images_per_second"] = Math.Round(ImagesPerSecond(setDir, size, reduced, workers), 1),
                        });
        }
        return new JsonObject
        {
            ["benchmark"] = "data",
            ["samples_per_set"] = Shards * PerShard,
            ["shards_dir"] = dir,
            ["jpeg_decode"] = ImageDecoder.JpegBackend,
            ["pipeline"] = "tar → SkiaSharp decode (+EXIF) → RandomResizedCrop(scale 0.75–1, ratio 1, Pillow bilinear) → ToTensor → batch 16; torch threads 1; best of 3",
            ["results"] = results,
            ["decode_only"] = decodeOnly,
        };
    }

    private static double DecodesPerSecond(List<(byte[] Jpg, byte[] Txt)> photos, int shrink)
    {
        var sw = Stopwatch.StartNew();
        long n = 0;
        while (sw.Elapsed.TotalSeconds < 3)
            foreach (var (jpg, _) in photos.Take(7))
            {
                using var image = ImageDecoder.Open(jpg);
                image.Decode(shrink);
                n++;
            }
        return n / sw.Elapsed.TotalSeconds;
    }

    private static double ImagesPerSecond(string dir, int size, bool reduced, int workers)
    {
        var preprocessing = new PreprocessingConfig();
        preprocessing.Steps.Add(new RandomResizedCropConfig { Size = size, Scale = [0.75, 1.0], Ratio = [1.0, 1.0] });
        preprocessing.Steps.Add(new ToTensorConfig());
        var data = new DataConfig
        {
            WebdatasetBaseUrl = Path.Combine(dir, "{}.tar"), ShardWidth = 5, StartShard = 0, EndShard = Shards - 1,
            Preprocessing = preprocessing, ReducedDecode = reduced,
        };
        var dataset = new DecoderDataset(data, new DataIssues(), requireImageEmbedding: false);
        var list = ShardSpec.Urls(data.WebdatasetBaseUrl, 0, Shards - 1, 5);
        double best = 0;
        for (int repeat = 0; repeat < 3; repeat++)
        {
            var sw = Stopwatch.StartNew();
            long images = 0;
            foreach (var batch in new DecoderDataLoader(list, dataset, new LoaderOptions { BatchSize = 16, NumWorkers = workers, Seed = repeat }))
            {
                images += batch.Count;
                batch.Dispose();
            }
            best = Math.Max(best, images / sw.Elapsed.TotalSeconds);
            GC.Collect();
        }
        return best;
    }

    private static void WriteShards(string dir, List<(byte[] Jpg, byte[] Txt)> photos)
    {
        Directory.CreateDirectory(dir);
        for (int s = 0; s < Shards; s++)
        {
            using var stream = File.Create(Path.Combine(dir, $"{s:D5}.tar"));
            using var writer = new TarWriter(stream, TarEntryFormat.Ustar);
            for (int i = 0; i < PerShard; i++)
            {
                var (jpg, txt) = photos[(s * PerShard + i) % photos.Count];
                string key = $"{s:D5}{i:D4}";
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, key + ".jpg") { DataStream = new MemoryStream(jpg) });
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, key + ".txt") { DataStream = new MemoryStream(txt) });
            }
        }
    }

    /// <summary>Upscales so the longer side is <paramref name="longSide"/>, adds Gaussian noise (σ 3) for photo-like entropy, encodes q90.</summary>
    private static byte[] Enlarge(byte[] jpg, int longSide, int seed)
    {
        var image = ImageDecoder.Decode(jpg);
        double scale = (double)longSide / Math.Max(image.Width, image.Height);
        var big = Resampler.Resize(image, (int)Math.Round(image.Width * scale), (int)Math.Round(image.Height * scale), ResampleFilter.Bicubic);
        var random = new Random(seed);
        for (int i = 0; i < big.Pixels.Length; i++)
        {
            double noise = 3 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            big.Pixels[i] = (byte)Math.Clamp(Math.Round(big.Pixels[i] + noise), 0, 255);
        }
        return ImageDecoder.EncodeJpeg(big, 90);
    }
    private static List<(byte[] Jpg, byte[] Txt)> ReadPhotos(string tarPath)
    {
        var samples = new List<(byte[], byte[])>();
        var issues = new DataIssues();
        foreach (var sample in WebDatasetReader.Read(File.OpenRead(tarPath), tarPath, issues))
            samples.Add((sample.Files["jpg"], sample.Files["txt"]));
        return samples;
    }
}
