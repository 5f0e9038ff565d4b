using System.Diagnostics;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Bench;

/// <summary>
/// One case of the side-by-side benchmark (bench/model-side-by-side.sh), timed in a fresh process so that its peak
/// RSS is its own; bench/model_upstream.py times the same case with DALLE2-pytorch 1.15.6.
///   dalle2-bench case NAME [runs]
/// Training cases: DecoderTrainer.Step (forward, backward, gradient clipping, AdamW, EMA) as train-decoder runs it.
/// Sampling cases: one Unet evaluation at t = 500 under no_grad, cond_scale 1 or 3.
/// </summary>
public static class ModelCases
{
    private const int ImageSize = 64, EmbedDim = 768, SampleTime = 500, Warmup = 2;

    private static UnetConfig TestUnet() => BenchModels.TestConfigDecoder().Unets[0];

    private static UnetConfig MediumUnet() => new()
    {
        Dim = 64, ImageEmbedDim = EmbedDim, DimMults = [1, 2, 4], SelfAttn = new([false, true, true]),
    };

    private sealed record Case(bool Train, Func<UnetConfig> Unet, int Batch, double CondScale = 1.0, bool DataParallel = false);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        ["train-test-4"] = new(true, TestUnet, 4),
        ["train-test-16"] = new(true, TestUnet, 16),
        ["train-medium-4"] = new(true, MediumUnet, 4),
        ["sample-test-4"] = new(false, TestUnet, 4),
        ["guided-test-4"] = new(false, TestUnet, 4, CondScale: 3.0),
        // Data parallel (bench/data-parallel-scaling.sh): a global batch of 8 shared by the ranks mpirun starts (1 → 8 per rank).
        ["dp-train-test-8"] = new(true, TestUnet, 8, DataParallel: true),
    };

    public static IReadOnlyCollection<string> Names => Cases.Keys;

    public static JsonObject Run(string[] args)
    {
        var name = args.ElementAtOrDefault(0) ?? throw new ArgumentException($"case NAME: one of {string.Join(", ", Cases.Keys)}");
        var c = Cases.GetValueOrDefault(name) ?? throw new ArgumentException($"unknown case {name}: one of {string.Join(", ", Cases.Keys)}");
        int runs = args.Length > 1 ? int.Parse(args[1]) : 10;
        using var collectives = c.DataParallel ? Dalle2Sharp.Runtime.Mpi.StartIfLaunched() : Dalle2Sharp.Runtime.SingleProcess.Instance;
        int batch = c.Batch / collectives.WorldSize;
        var profile = Environment.GetEnvironmentVariable("DALLE2_BENCH_PROFILE") == "1";
        void Mark(string what) { if (profile) Console.Error.WriteLine($"{SecondsSinceProcessStart():F2} s  {what}"); }
        Mark("main");
        manual_seed(0);
        Mark("torch loaded");
        using var decoder = new Decoder(new DecoderConfig { Unets = [c.Unet()], ImageSizes = [ImageSize], Timesteps = 1000, LearnedVariance = true });
        Mark("decoder built");
        var g = new Generator(seed: 0);
        var images = rand([batch, 3, ImageSize, ImageSize], generator: g);
        var embeds = randn([batch, EmbedDim], generator: g);
        Action step;
        DecoderTrainer? trainer = null;
        if (c.Train)
        {
            trainer = new DecoderTrainer(decoder, new TrainConfig { Lr = 1e-4, Wd = 0.01, MaxGradNorm = 0.5, EmaBeta = 0.99, UseEma = true })
            {
                Collectives = collectives,
            };
            trainer.BroadcastFromRoot();
            step = () =>
            {
                using var scope = NewDisposeScope();
                trainer.Step(images, embeds, null, 1, g);
            };
        }
        else
        {
            decoder.eval();
            var unet = decoder.Unet(1);
            var x = randn([batch, 3, ImageSize, ImageSize], generator: g);
            var t = full(batch, SampleTime, dtype: int64);
            var cond = new UnetConditioning(ImageEmbed: embeds);
            step = () =>
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                unet.ForwardWithCondScale(x, t, cond, c.CondScale);
            };
        }
        if (Environment.GetEnvironmentVariable("DALLE2_BENCH_OTHER_SHAPE_FIRST") == "1" && trainer is not null)
        {
            var clock0 = Stopwatch.StartNew();
            using (NewDisposeScope()) trainer.Step(rand([2, 3, ImageSize, ImageSize], generator: g), randn([2, EmbedDim], generator: g), null, 1, g);
            Mark($"other-shape step ({clock0.Elapsed.TotalMilliseconds:F0} ms)");
        }
        double? firstStep = null;
        var times = new List<double>();
        for (int i = 0; i < Warmup + runs; i++)
        {
            var clock = Stopwatch.StartNew();
            step();
            double ms = clock.Elapsed.TotalMilliseconds;
            firstStep ??= SecondsSinceProcessStart();
            Mark($"step {i} done ({ms:F0} ms)");
            if (i >= Warmup) times.Add(ms);
        }
        times.Sort();
        var allReduce = trainer?.LastAllReduce ?? (0, 0);
        trainer?.Dispose();
        return new JsonObject
        {
            ["case"] = name, ["side"] = "ours", ["batch"] = c.Batch, ["runs"] = runs, ["ranks"] = collectives.WorldSize, ["rank"] = collectives.Rank,
            ["images_per_s"] = Math.Round(c.Batch / (times[times.Count / 2] / 1000), 2),
            ["allreduce_ms"] = Math.Round(allReduce.Milliseconds, 1), ["allreduce_bytes"] = allReduce.Bytes,
            ["ms_median"] = Math.Round(times[times.Count / 2], 1), ["ms_min"] = Math.Round(times[0], 1),
            ["first_step_s"] = Math.Round(firstStep!.Value, 2), ["peak_rss_mb"] = Math.Round(Measure.PeakRssMb()),
            ["threads"] = get_num_threads(),
        };
    }

    /// <summary>As bench/model_upstream.py reads it: /proc/uptime minus the process's start time (field 22 of /proc/self/stat).</summary>
    private static double SecondsSinceProcessStart()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        long startTicks = long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19]);
        double uptime = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        const double ClockTicksPerSecond = 100;   // sysconf(_SC_CLK_TCK) on Linux x86-64
        return uptime - startTicks / ClockTicksPerSecond;
    }
}
