using System.Diagnostics;
using System.Formats.Tar;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using TorchSharp;

namespace Dalle2Sharp.Bench;

/// <summary>
/// Input pipeline throughput: tar → decode → RandomResizedCrop (scale 0.75–1, ratio 1) → ToTensor →
/// batch of 16, at 64 and 256 px, with 1 and 2 workers and torch limited to 1 thread, on shards made
/// of the upstream test photos (123–535 px JPEGs, baseline and progressive) repeated to 490 samples.
/// `bench/upstream_data_baseline.py` times upstream's path (PIL + torchvision) on the same files.
/// </summary>
public static class DataBench
{
    public static JsonObject Run(string[] args)
    {
        string source = args.Length > 0 ? args[0] : "../shared/data/upstream-test-shards/0.tar";
        string dir = args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "dalle2-data-bench");
        int shards = 7, perShard = 70;
        var photos = ReadPhotos(source);
        Directory.CreateDirectory(dir);
        for (int s = 0; s < shards; s++)
        {
            using var stream = File.Create(Path.Combine(dir, $"{s:D5}.tar"));
            using var writer = new TarWriter(stream, TarEntryFormat.Ustar);
            for (int i = 0; i < perShard; i++)
            {
                var (jpg, txt) = photos[(s * perShard + i) % photos.Count];
                string key = $"{s:D5}{i:D4}";
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, key + ".jpg") { DataStream = new MemoryStream(jpg) });
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, key + ".txt") { DataStream = new MemoryStream(txt) });
            }
        }

        torch.set_num_threads(1);
        var results = new JsonArray();
        foreach (int size in new[] { 64, 256 })
            foreach (int workers in new[] { 1, 2 })
            {
                var preprocessing = new PreprocessingConfig();
                preprocessing.Steps.Add(new RandomResizedCropConfig { Size = size, Scale = [0.75, 1.0], Ratio = [1.0, 1.0] });
                preprocessing.Steps.Add(new ToTensorConfig());
                var data = new DataConfig { WebdatasetBaseUrl = Path.Combine(dir, "{}.tar"), ShardWidth = 5, StartShard = 0, EndShard = shards - 1, Preprocessing = preprocessing };
                var dataset = new DecoderDataset(data, new DataIssues(), requireImageEmbedding: false);
                var list = ShardSpec.Urls(data.WebdatasetBaseUrl, 0, shards - 1, 5);
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
                results.Add(new JsonObject { ["size"] = size, ["workers"] = workers, ["images_per_second"] = Math.Round(best, 1) });
            }
        return new JsonObject
        {
            ["benchmark"] = "data",
            ["samples"] = shards * perShard,
            ["shards_dir"] = dir,
            ["pipeline"] = "tar → SkiaSharp decode (+EXIF) → RandomResizedCrop(scale 0.75–1, ratio 1, bilinear antialias) → ToTensor → batch 16; torch threads 1; best of 3",
            ["results"] = results,
        };
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
