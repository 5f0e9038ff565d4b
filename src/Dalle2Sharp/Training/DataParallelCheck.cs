using System.Diagnostics;
using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using Dalle2Sharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// `dalle2 mpi-check`: what a user runs under `mpirun`/`srun` before a long job. It measures the collectives (latency of
/// a small allreduce, bandwidth of a large one), then trains a small decoder data-parallel for a few steps on
/// deterministic synthetic data — rank r takes samples [r·b, (r+1)·b) of each global batch of W·b, each sample's
/// timestep and noise drawn from its own generator — so that W ranks with batch b see exactly what one process with
/// batch W·b sees, and checks that every rank ends with the same weights. The weights can be saved to compare runs with
/// different rank counts (the tests do: 2 × b against 1 × 2b).
/// </summary>
public static class DataParallelCheck
{
    public sealed record Report(int WorldSize, double LatencyMicroseconds, double BandwidthGBps, bool RanksAgree,
                                (double Sum, double SumOfSquares) Fingerprint, IReadOnlyList<double> Losses);

    private const int ImageSize = 16, EmbedDim = 16, Timesteps = 100, LatencyRounds = 200, BandwidthRounds = 5;
    private const long BandwidthElements = 16L * 1024 * 1024;   // 64 MiB of float32
    private const ulong SampleSeedBase = 1_000_003;              // per-sample generators: base + global sample index

    public static DecoderConfig SmallDecoder() => new()
    {
        Unets = [new UnetConfig
        {
            Dim = 8, ImageEmbedDim = EmbedDim, CondDim = 8, DimMults = [1, 2], AttnDimHead = 8, AttnHeads = 2,
            SelfAttn = new ScalarOrList<bool>([false, true]), ResnetGroups = 4, NumResnetBlocks = 1,
        }],
        ImageSizes = [ImageSize], Timesteps = Timesteps, LearnedVariance = false,
        ImageCondDropProb = 0, TextCondDropProb = 0,
    };

    public static Report Run(ICollectives collectives, int steps, int batchPerRank, string? saveWeightsTo, Action<string> print)
    {
        var (latency, bandwidth) = MeasureCollectives(collectives);
        manual_seed(0);
        using var decoder = new Decoder(SmallDecoder());
        using var trainer = new DecoderTrainer(decoder, new TrainConfig { Lr = 1e-3, Wd = 0.01, MaxGradNorm = 0.5, EmaBeta = 0.99 })
        {
            Collectives = collectives,
        };
        trainer.BroadcastFromRoot();
        var losses = new List<double>();
        int world = collectives.WorldSize;
        for (int step = 0; step < steps; step++)
        {
            long first = (long)step * world * batchPerRank + (long)collectives.Rank * batchPerRank;
            using var scope = NewDisposeScope();
            var (images, embeds, times, noise) = Samples(first, batchPerRank);
            var result = trainer.StepOn(1, () => decoder.PLosses(1, images * 2 - 1, times, new UnetConditioning(ImageEmbed: embeds), noise));
            losses.Add(result.Loss);
        }
        // Uneven gathers (evaluation features): rank r gives r + 1 rows filled with r; everyone must see 1, 2, … rows in order.
        using var rows = full(new long[] { collectives.Rank + 1, 3 }, (float)collectives.Rank);
        using var gathered = collectives.AllGatherRows(rows);
        var expected = Enumerable.Range(0, world).SelectMany(r => Enumerable.Repeat((float)r, (r + 1) * 3));
        bool gatherOk = gathered.data<float>().ToArray().SequenceEqual(expected);
        var fingerprint = trainer.Fingerprint();
        var all = collectives.AllGather(BitConverter.GetBytes(fingerprint.Sum).Concat(BitConverter.GetBytes(fingerprint.SumOfSquares)).ToArray());
        bool agree = all.All(b => b.AsSpan().SequenceEqual(all[0])) && gatherOk;
        if (collectives.IsRoot && saveWeightsTo is not null) Checkpoint.Save(saveWeightsTo, trainer);
        if (collectives.IsRoot)
            print($"ranks {world}: allreduce latency {latency:F1} µs (8 bytes), bandwidth {bandwidth:F2} GB/s (64 MiB float32); " +
                  $"uneven all-gather {(gatherOk ? "ok" : "WRONG")}; {steps} steps of batch {batchPerRank} per rank; " +
                  $"weights identical on every rank: {(agree ? "yes" : "NO")} " +
                  $"(fingerprint {fingerprint.Sum:R} / {fingerprint.SumOfSquares:R}); " +
                  $"losses {string.Join(" ", losses.Select(l => l.ToString("F6")))}");
        return new Report(world, latency, bandwidth, agree, fingerprint, losses);
    }

    /// <summary>Samples first..first+count−1 of the synthetic stream: each from its own generator, whatever the batch split.</summary>
    private static (Tensor Images, Tensor Embeds, Tensor Times, Tensor Noise) Samples(long first, int count)
    {
        var images = new List<Tensor>();
        var embeds = new List<Tensor>();
        var times = new List<Tensor>();
        var noise = new List<Tensor>();
        for (long k = first; k < first + count; k++)
        {
            var g = new Generator(SampleSeedBase + (ulong)k);
            images.Add(rand([3, ImageSize, ImageSize], generator: g));
            embeds.Add(randn([EmbedDim], generator: g));
            times.Add(randint(0, Timesteps, [1], generator: g, dtype: ScalarType.Int64));
            noise.Add(randn([3, ImageSize, ImageSize], generator: g));
        }
        return (stack(images), stack(embeds), cat(times), stack(noise));
    }

    private static (double LatencyMicroseconds, double BandwidthGBps) MeasureCollectives(ICollectives collectives)
    {
        collectives.Barrier();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < LatencyRounds; i++) collectives.AllReduceSum(1.0);
        double latency = clock.Elapsed.TotalMilliseconds * 1000 / LatencyRounds;
        using var buffer = ones(BandwidthElements);
        collectives.AllReduceSum(buffer);   // warm-up
        clock.Restart();
        for (int i = 0; i < BandwidthRounds; i++) collectives.AllReduceSum(buffer);
        double seconds = clock.Elapsed.TotalSeconds / BandwidthRounds;
        return (latency, BandwidthElements * sizeof(float) / seconds / 1e9);
    }
}
