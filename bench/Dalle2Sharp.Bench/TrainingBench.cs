using System.Diagnostics;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Bench;

/// <summary>
/// Training through DecoderTrainer.Step (the loop's path: dispose scope per step, GC every 10):
/// throughput of the upstream test-config Unet at 64 px, batch 4 and 16; then RSS over a long run of
/// the quickstart decoder (default 2,000 steps), sampled every 100 steps.
/// </summary>
public static class TrainingBench
{
    public static JsonObject Run(string[] args)
    {
        int memorySteps = args.Length > 0 ? int.Parse(args[0]) : 2000;
        var throughput = new JsonArray();
        foreach (int batch in new[] { 4, 16 })
        {
            manual_seed(0);
            using var decoder = new Decoder(BenchModels.TestConfigDecoder());
            using var trainer = new DecoderTrainer(decoder, new TrainConfig { EmaBeta = 0.99 });
            var g = new Generator(seed: 0);
            var images = rand([batch, 3, 64, 64], generator: g);
            var embeds = randn([batch, 768], generator: g);
            int step = 0;
            var t = Measure.Time(() => { trainer.Step(images, embeds, null, 1, g); if (++step % 10 == 0) GC.Collect(); }, runs: 8, warmup: 2);
            throughput.Add(new JsonObject { ["batch"] = batch, ["step_ms"] = Math.Round(t.Median, 1), ["images_per_second"] = Math.Round(batch * 1000 / t.Median, 2) });
        }

        var config = ConfigLoader.LoadFile(Path.Combine(AppContext.BaseDirectory, "quickstart.json"));
        manual_seed(0);
        using var qsDecoder = new Decoder(config.Decoder);
        using var qsTrainer = new DecoderTrainer(qsDecoder, config.Train);
        var gen = new Generator(seed: 1);
        var rss = new JsonArray();
        var sw = Stopwatch.StartNew();
        for (int s = 1; s <= memorySteps; s++)
        {
            using (var scope = NewDisposeScope())
            {
                var (imgs, embs) = SyntheticShapes.Batch(16, 32, gen);
                qsTrainer.Step(imgs, embs, null, 1, gen);
            }
            if (s % 10 == 0) GC.Collect();
            if (s == 1 || s % 100 == 0) rss.Add(new JsonObject { ["step"] = s, ["rss_mb"] = Math.Round(Measure.RssMb()) });
        }
        return new JsonObject
        {
            ["benchmark"] = "training",
            ["throughput_test_config_unet_64px"] = throughput,
            ["upstream_reference"] = "PyTorch 1.13 + OpenBLAS, 2 threads, same machines: ≈ 700–940 ms per batch-4 step",
            ["memory_run"] = new JsonObject { ["decoder"] = "configs/quickstart.json (1.1 M parameters, 32 px, batch 16)", ["steps"] = memorySteps, ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds), ["rss"] = rss },
        };
    }
}
