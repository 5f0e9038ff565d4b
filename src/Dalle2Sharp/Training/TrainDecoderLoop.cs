using System.Diagnostics;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Models;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Tracking;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Training;

/// <summary>
/// `dalle2 train-decoder`: upstream's train_decoder.py loop — epochs of train → validation →
/// samples and checkpoints — with the tracker's logging, loading and saving (spec §6).
/// </summary>
public sealed class TrainDecoderLoop
{
    /// <summary>Consecutive non-finite losses after which training stops instead of going on.</summary>
    public const int MaxConsecutiveNonFinite = 20;

    private readonly TrainDecoderConfig _config;
    private readonly Action<string> _print;
    private readonly ITrainingProgress _progress;

    public TrainDecoderLoop(TrainDecoderConfig config, Action<string>? print = null) : this(config, new PlainProgress(print)) { }

    public TrainDecoderLoop(TrainDecoderConfig config, ITrainingProgress progress)
    {
        _config = config;
        _progress = progress;
        _print = progress.Line;
    }

    /// <summary>Upstream's TRAIN_CALC_LOSS_EVERY_ITERS: training losses are logged every this many batches, averaged over them.</summary>
    public const int LogEveryBatches = 10;

    /// <summary>Seed offsets from the run's seed for the generators of each phase (independent streams).</summary>
    private const ulong TrainSeedOffset = 1, ValidationSeedOffset = 7, GridSeedOffset = 11;
    /// <summary>Rank r's training generator is seeded seed + TrainSeedOffset + r·RankSeedStride (its own timesteps and noise).</summary>
    private const ulong RankSeedStride = 1_000_003;

    /// <summary>
    /// The processes training this model data-parallel (MPI when launched by mpirun/srun, else one): each reads its own
    /// slice of the shards, gradients are averaged, and only rank 0 logs, saves, samples and evaluates.
    /// </summary>
    public ICollectives Collectives { get; init; } = SingleProcess.Instance;

    /// <summary>
    /// Trains until the configured epochs are done (returns true) or <paramref name="cancel"/> fires
    /// (SIGINT / SIGTERM): then the current step finishes, a mid-epoch checkpoint that resumes exactly is
    /// written, and it returns false.
    /// </summary>
    public bool Run(string? configPath = null, CancellationToken cancel = default)
    {
        var c = _config;
        var device = Devices.Resolve(c.Train.Device);
        // The metric networks' weights are checked (and fetched when possible) before any work; so is CLIP.
        var weights = new Evaluation.MetricWeights(c.Evaluate);
        // Data parallel: rank 0 fetches what is missing first, the others then find the files (no concurrent downloads).
        if (!Collectives.IsRoot) Collectives.Barrier();
        weights.EnsureAvailable(c.Evaluate, _print);
        using var clip = c.Decoder.Clip is null ? null : Clip.ClipStage.Start(c.Decoder, weights.Folder, device, _print);
        if (Collectives.IsRoot) Collectives.Barrier();
        if (clip is not null) MatchClipWidths(clip.Embedder);
        manual_seed(c.Seed);

        // Rank 0 finds (or downloads) the checkpoint to resume from; every rank loads that file (one filesystem).
        string? resumeFrom = Collectives.IsRoot ? CheckpointLoader.Resolve(c.Tracker, _print, c.Data.Timeouts) : null;
        resumeFrom = ShareFromRoot(resumeFrom);
        var resolvedConfig = System.Text.Json.Nodes.JsonNode.Parse(ConfigWriter.ToJson(c))!.AsObject();
        using var tracker = Collectives.IsRoot
            ? RunTracker.Start(c.Tracker, resuming: resumeFrom is not null, _print, resolvedConfig, c.Data.Timeouts, Collectives.WorldSize)
            : RunTracker.Follower(c.Tracker, Collectives.Rank);
        int exitCode = ExitFailure;
        try
        {
            bool completed = Train(tracker, configPath, resumeFrom, device, weights, clip, cancel);
            exitCode = completed ? 0 : ExitInterrupted;
            return completed;
        }
        finally
        {
            tracker.Finish(exitCode);
        }
    }

    /// <summary>The exit codes the run reports to its logger (wandb marks a run failed unless 0).</summary>
    private const int ExitFailure = 1, ExitInterrupted = 130;

    /// <summary>
    /// The unets' embedding widths from CLIP where the config leaves them out (upstream takes them from the
    /// adapter); a width that disagrees with CLIP's is an error before any work.
    /// </summary>
    private void MatchClipWidths(Clip.ClipEmbedder clip)
    {
        for (int i = 0; i < _config.Decoder.Unets.Count; i++)
        {
            var u = _config.Decoder.Unets[i];
            u.ImageEmbedDim ??= clip.EmbedDim;
            if (u.ImageEmbedDim != clip.EmbedDim)
                throw new UserInputException($"decoder.unets[{i}].image_embed_dim is {u.ImageEmbedDim}, but decoder.clip's image embeddings " +
                                             $"are {clip.EmbedDim} wide");
            if (!u.CondOnTextEncodings) continue;
            u.TextEmbedDim ??= clip.TextWidth;
            if (u.TextEmbedDim != clip.TextWidth)
                throw new UserInputException($"decoder.unets[{i}].text_embed_dim is {u.TextEmbedDim}, but decoder.clip's text encodings " +
                                             $"are {clip.TextWidth} wide");
        }
    }

    private bool Train(RunTracker tracker, string? configPath, string? resumeFrom, Device device, Evaluation.MetricWeights weights,
                       Clip.ClipStage? clip, CancellationToken cancel)
    {
        var c = _config;
        if (configPath is null && Collectives.IsRoot)
        {
            configPath = Path.Combine(tracker.DataPath, "decoder_config.json");
            AtomicFile.Write(configPath, s => s.Write(System.Text.Encoding.UTF8.GetBytes(ConfigWriter.ToJson(c))));
        }
        if (configPath is not null) tracker.SaveConfig(configPath);

        int rank = Collectives.Rank, world = Collectives.WorldSize;
        var splits = ShardSpec.Split(c.Data, c.Seed, rank, world);
        var issues = new DataIssues(w => tracker.Print($"warning: {w}"));
        var dataset = new DecoderDataset(c.Data, issues, requireImageEmbedding: !c.Decoder.Unconditional && clip is null,
            imageEmbedDim: c.Decoder.Unets[0].ImageEmbedDim);

        using var decoder = new Decoder(c.Decoder);
        decoder.to(device);
        using var trainer = new DecoderTrainer(decoder, c.Train) { Collectives = Collectives };
        using var evaluator = new Evaluation.DecoderEvaluator(c.Evaluate, weights, device);
        var unetNumbers = Enumerable.Range(1, decoder.NumUnets).Where(u => trainer.Trained[u - 1]).ToArray();
        // The logger's step, as upstream's: optimizer steps taken by the first trained unet.
        long LogStep() => trainer.Steps[unetNumbers[0] - 1];
        long stepsThisRun = 0;
        bool stopAfterEpoch = false;
        tracker.Print($"decoder: {decoder.NumUnets} unet(s), {decoder.parameters().Sum(p => p.numel()):N0} parameters; " +
               $"training unet(s) {string.Join(", ", unetNumbers)} on {device}; " +
               $"shards train {splits.Train.Count} / val {splits.Val.Count} / test {splits.Test.Count}" +
               (world > 1 ? $" per rank; {world} ranks (MPI), gradients averaged in buckets of " +
                            $"{DecoderTrainer.AllReduceBucketElements * sizeof(float) >> 20} MiB" : ""));
        tracker.Print($"oneDNN CPU kernels: {NativeSetup.OneDnnIsa}");
        tracker.Print($"TorchSharp Scalar guard: {ScalarGuard.Status}");
        tracker.Print($"allocator: {NativeSetup.Allocator}");
        // On CUDA: batches in pinned memory copied asynchronously, TF32 matmuls, and no per-step reads of the loss (the
        // trainer's device-side guard); the loss is read once per log line.
        bool asyncCopies = device.type == DeviceType.CUDA;
        if (asyncCopies)
            tracker.Print($"CUDA: {Devices.Tf32Status}; pinned batches copied asynchronously; non-finite guard on the device " +
                          $"(losses read every {LogEveryBatches} batches)");
        tracker.Print($"JPEG decode: {Data.ImageDecoder.JpegBackend}" +
               (Data.ImageTransforms.ReducesDecode(c.Data.Preprocessing, c.Data.ReducedDecode)
                   ? ", at reduced size (DCT-scaled) before the first resize" : ""));

        int startEpoch = 0;
        long samplesSeen = 0, resumeSample = 0;
        Tensor? generatorState = null;
        var validationHistory = new List<double>();
        if (resumeFrom is not null)
        {
            var root = Checkpoint.Load(resumeFrom, trainer);
            startEpoch = Convert.ToInt32(root["epoch"] ?? 0) + (root["next_task"] as string == "train" ? 0 : 1);
            samplesSeen = Convert.ToInt64(root["samples_seen"] ?? 0L);
            resumeSample = Convert.ToInt64(root["sample"] ?? 0L);
            generatorState = root["rng_state"] as Tensor;
            // Data-parallel checkpoints hold every rank's generator: with the same number of ranks each takes its own
            // (exact resume); with another number the ranks draw afresh from the resumed position.
            if (root["rng_states"] is System.Collections.IList states)
                generatorState = states.Count == world ? states[rank] as Tensor : null;
            else if (world > 1) generatorState = null;
            if (root["validation_losses"] is System.Collections.IList losses)
                validationHistory.AddRange(losses.Cast<object>().Select(v => v is Tensor t ? t.item<float>() : Convert.ToDouble(v)));
            tracker.Print($"resumed from {resumeFrom}: epoch {startEpoch}, {samplesSeen} samples seen, steps [{string.Join(", ", trainer.Steps)}]");
        }

        // The training generator drives timesteps, noise and condition dropout; its state is checkpointed
        // so that a resumed run draws exactly what an uninterrupted one would.
        var generator = new Generator((ulong)c.Seed + TrainSeedOffset + (ulong)rank * RankSeedStride, device);
        if (generatorState is not null) generator.set_state(generatorState);
        trainer.BroadcastFromRoot();
        var condScale = c.Train.CondScale.Expand(decoder.NumUnets);
        // Upstream logs unets numbered from 0; the mean of the last LogEveryBatches non-zero losses per unet (the trainer's
        // statistics since the previous log: with the device-side guard, the only device read of the loss).
        long nextSaveAt = samplesSeen + c.Train.SaveEveryNSamples;
        for (int epoch = startEpoch; epoch < c.Train.Epochs; epoch++)
        {
            // ---- train
            var clock = Stopwatch.StartNew();
            long epochSamples = 0, step = 0, lastLogSamples = 0;
            var lastLogTime = clock.Elapsed;
            var loader = new DecoderDataLoader(splits.Train, dataset, new LoaderOptions
            {
                BatchSize = c.Data.BatchSize, NumWorkers = c.Data.NumWorkers, Shuffle = c.Data.ShuffleTrain, Resample = c.Data.ResampleTrain,
                MaxSamples = PerRank(c.Train.EpochSamples), Seed = c.Seed, Epoch = epoch, PinMemory = asyncCopies,
            });
            var lastLoss = new Dictionary<int, double>();
            // Resuming mid-epoch: the loader's order is fixed by seed, epoch and worker count, so the
            // batches already trained on are skipped and the epoch goes on where it stopped.
            long skip = epoch == startEpoch ? resumeSample : 0;
            epochSamples = lastLogSamples = skip;
            _progress.Phase($"epoch {epoch} train", c.Train.EpochSamples);
            if (skip > 0) _progress.Advance(skip, "resuming");
            foreach (var (raw, globalCount, cancelled) in Lockstep(loader, cancel))
            {
                using (raw)
                {
                    if (skip > 0) { skip -= globalCount; continue; }
                    // decoder.clip: embeddings computed here, per batch, on the training device (disposed with the batch).
                    using var batch = clip?.Embed(raw) ?? raw;
                    if (cancelled)
                    {
                        Save(tracker, trainer, generator, epoch, epochSamples, "train", validationHistory, samplesSeen, isBest: false);
                        _progress.EndPhase();
                        tracker.Print($"interrupted: saved {Path.Combine(tracker.DataPath, "checkpoint.pth")} at epoch {epoch}, sample " +
                            $"{epochSamples} " +
                               $"({samplesSeen} samples seen); the same command with tracker.log.auto_resume resumes exactly here");
                        return false;
                    }
                    var images = batch.Images.to(device, non_blocking: asyncCopies);
                    var embeds = batch.ImageEmbeddings?.to(device, non_blocking: asyncCopies);
                    var text = batch.TextEncodings?.to(device, non_blocking: asyncCopies);
                    foreach (var unet in unetNumbers)
                    {
                        var result = trainer.Step(images, embeds, text, unet, generator);
                        if (!result.Deferred) lastLoss[unet] = result.Loss;
                        StopOnNonFiniteRun(trainer, unet);
                    }
                    epochSamples += globalCount;
                    samplesSeen += globalCount;
                    _progress.Advance(batch.Count, string.Join("  ", lastLoss.Select(kv => $"unet {kv.Key} loss {kv.Value:F4}")));
                    if (step % LogEveryBatches == 0)
                    {
                        GC.Collect();
                        var now = clock.Elapsed;
                        var record = new Dictionary<string, object?>
                        {
                            ["Epoch"] = epoch, ["Sample"] = epochSamples, ["Step"] = step, ["Samples Seen"] = samplesSeen,
                            ["Samples per second"] = Math.Round((epochSamples - lastLogSamples) / (now - lastLogTime).TotalSeconds, 2),
                        };
                        foreach (var unet in unetNumbers)
                        {
                            var statistics = trainer.TakeStatistics(unet);
                            StopOnNonFiniteRun(trainer, unet);
                            if (double.IsFinite(statistics.MeanLoss)) lastLoss[unet] = statistics.MeanLoss;
                            record[$"Unet {unet - 1} Training Loss"] = statistics.MeanLoss;
                            if (trainer.Ema is { } ema) record[$"Unet {unet - 1} EMA Decay"] = Math.Round(ema[unet - 1].CurrentDecay(), 5);
                        }
                        if (clip is not null) record["CLIP ms per batch"] = Math.Round(clip.MillisecondsPerBatch, 1);
                        if (world > 1) record["All-reduce ms per step"] = Math.Round(trainer.LastAllReduce.Milliseconds, 1);
                        record["Skipped non-finite steps"] = trainer.SkippedNonFinite;
                        record["Data issues"] = issues.Total;
                        tracker.Log(record, LogStep());
                        (lastLogSamples, lastLogTime) = (epochSamples, now);
                    }
                    // save_immediately: a snapshot at the first batch of every epoch, as upstream.
                    if (samplesSeen >= nextSaveAt || (c.Train.SaveImmediately && step == 0))
                    {
                        nextSaveAt = samplesSeen + c.Train.SaveEveryNSamples;
                        Save(tracker, trainer, generator, epoch, epochSamples, "train", validationHistory, samplesSeen, isBest: false);
                        if (Collectives.IsRoot)
                            Guarded(tracker, epoch, "sample grids",
                            () => SampleGrids(tracker, trainer, dataset, splits, epoch, condScale, device, LogStep(), clip,
                                tag: $"_samples{samplesSeen}"));
                    }
                    step++;
                    if (MaxSteps is { } max && ++stepsThisRun >= max)
                    {
                        tracker.Print($"--max-steps {max}: training stops after this epoch's validation, samples and checkpoint");
                        stopAfterEpoch = true;
                        break;
                    }
                }
            }

            _progress.EndPhase();

            // ---- validation
            _progress.Phase($"epoch {epoch} validation", c.Train.ValidationSamples);
            var valLoader = new DecoderDataLoader(splits.Val, dataset, new LoaderOptions
            {
                BatchSize = c.Data.BatchSize, NumWorkers = c.Data.NumWorkers, MaxSamples = PerRank(c.Train.ValidationSamples), Seed = c.Seed,
                Epoch = epoch,
            });
            var sums = unetNumbers.ToDictionary(u => u, _ => 0.0);
            long valSamples = 0, valBatches = 0;
            var valGenerator = new Generator((ulong)c.Seed + ValidationSeedOffset, device);
            foreach (var batch in clip?.Embed(valLoader) ?? valLoader)
            {
                using (batch)
                {
                    if (cancel.IsCancellationRequested) break;
                    foreach (var unet in unetNumbers)
                        sums[unet] += trainer.Loss(batch.Images.to(device), batch.ImageEmbeddings?.to(device), batch.TextEncodings?.to(device),
                            unet, valGenerator);
                    valSamples += batch.Count;
                    valBatches++;
                    _progress.Advance(batch.Count, "");
                }
            }
            _progress.EndPhase();
            // Every rank's sums, batches and samples together (validation has no collectives inside, so ranks may differ here).
            var totals = Collectives.AllReduceSum([.. unetNumbers.Select(u => sums[u]), valBatches, valSamples,
                                                   cancel.IsCancellationRequested ? 1 : 0]);
            for (int k = 0; k < unetNumbers.Length; k++) sums[unetNumbers[k]] = totals[k];
            (valBatches, valSamples) = ((long)totals[unetNumbers.Length], (long)totals[unetNumbers.Length + 1]);
            bool stopRequested = totals[^1] > 0;
            double meanValidation = double.NaN;
            if (valBatches > 0)
            {
                // As upstream: the mean of the per-batch losses, unets numbered from 0.
                var record = new Dictionary<string, object?> { ["Epoch"] = epoch, ["Validation samples"] = valSamples };
                foreach (var unet in unetNumbers) record[$"Unet {unet - 1} Validation Loss"] = sums[unet] / valBatches;
                meanValidation = unetNumbers.Average(u => sums[u] / valBatches);
                tracker.Log(record, LogStep());
            }

            // ---- checkpoint: written before sampling and evaluation, so that a failure there never loses the epoch.
            // Validation cut short by a signal neither counts as the epoch's loss nor picks the best.
            bool validated = !stopRequested && double.IsFinite(meanValidation);
            bool isBest = validated && (validationHistory.Count == 0 ||
                meanValidation < validationHistory.Where(double.IsFinite).DefaultIfEmpty(double.MaxValue).Min());
            if (validated) validationHistory.Add(meanValidation);
            Save(tracker, trainer, generator, epoch, epochSamples, "train", validationHistory, samplesSeen, isBest, epochEnd: true);
            if (stopRequested)
            {
                tracker.Print($"interrupted: saved {Path.Combine(tracker.DataPath, "checkpoint.pth")} at the end of epoch {epoch}; " +
                       "the same command with tracker.log.auto_resume goes on from there");
                return false;
            }

            // ---- samples (rank 0 alone: the others go on to the next epoch and wait for it at the first step)
            if (Collectives.IsRoot)
                Guarded(tracker, epoch, "sample grids",
                    () => SampleGrids(tracker, trainer, dataset, splits, epoch, condScale, device, LogStep(), clip));

            // ---- evaluation (every rank generates its share from its validation shards; metrics over all, rank 0 logs)
            if (evaluator.HasMetrics && c.Evaluate.NEvaluationSamples > 0)
            {
                var evalLoader = new DecoderDataLoader(splits.Val, dataset, new LoaderOptions
                {
                    BatchSize = c.Data.BatchSize, NumWorkers = c.Data.NumWorkers, MaxSamples = PerRank(c.Evaluate.NEvaluationSamples),
                    Seed = c.Seed, Epoch = epoch,
                });
                Guarded(tracker, epoch, "evaluation", () =>
                {
                    var result = evaluator.Evaluate(trainer, clip?.Embed(evalLoader) ?? evalLoader, condScale, c.Seed, Collectives);
                    var record = new Dictionary<string, object?> { ["Epoch"] = epoch };
                    foreach (var (k, v) in result.Metrics) record[k] = v;
                    foreach (var (k, v) in evaluator.InputNotes) record[k] = v;
                    tracker.Log(record, LogStep());
                    foreach (var error in result.Errors) ReportFailure(tracker, epoch, "evaluation", error);
                });
            }
            if (cancel.IsCancellationRequested)
            {
                tracker.Print($"interrupted after epoch {epoch}'s checkpoint ({Path.Combine(tracker.DataPath, "checkpoint.pth")}); " +
                       "the same command with tracker.log.auto_resume goes on");
                return false;
            }
            var counts = issues.Snapshot().Where(kv => kv.Value > 0).ToDictionary(kv => $"data {kv.Key}", kv => (object?)kv.Value);
            if (counts.Count > 0) tracker.Log(counts, LogStep());
            tracker.Print($"epoch {epoch} done in {clock.Elapsed.TotalSeconds:F0} s: {epochSamples} samples, " +
                   $"mean validation loss {meanValidation:F5}{(isBest ? " (best)" : "")}");
            if (stopAfterEpoch) return true;
        }
        return true;
    }

    /// <summary>`--max-steps N` (smoke runs): after N training steps the epoch ends with its validation, checkpoint, samples and evaluation, and
    /// the run stops.</summary>
    public long? MaxSteps { get; init; }

    /// <summary>
    /// Sampling and evaluation run after the epoch's checkpoint is written: a failure there (a metric
    /// that cannot be computed, a numerical error) is logged with its cause and training goes on.
    /// </summary>
    /// <summary>Samples per rank for a per-run sample count (epoch_samples, validation_samples): the run's count shared out.</summary>
    private long? PerRank(long? samples) => samples is { } n ? (n + Collectives.WorldSize - 1) / Collectives.WorldSize : null;

    /// <summary>
    /// The batches of one loader, in step with the other ranks: each step all ranks say whether they have a batch, how many
    /// samples, and whether a stop was asked for; the epoch ends for all when any rank runs out (shards may hold different
    /// numbers of samples — no rank is left waiting at a collective), and a stop asked on any rank stops all at the same step.
    /// </summary>
    private IEnumerable<(DecoderBatch Batch, long GlobalCount, bool Stop)> Lockstep(IEnumerable<DecoderBatch> source, CancellationToken cancel)
    {
        using var batches = source.GetEnumerator();
        while (true)
        {
            bool has = batches.MoveNext();
            if (Collectives.WorldSize == 1)
            {
                if (!has) yield break;
                yield return (batches.Current, batches.Current.Count, cancel.IsCancellationRequested);
                continue;
            }
            var agreed = Collectives.AllReduceSum(has ? 1 : 0, has ? batches.Current.Count : 0, cancel.IsCancellationRequested ? 1 : 0);
            if (agreed[0] < Collectives.WorldSize)
            {
                if (has) batches.Current.Dispose();
                yield break;
            }
            yield return (batches.Current, (long)agreed[1], agreed[2] > 0);
        }
    }

    /// <summary>Rank 0's string on every rank (a path; null stays null). Collective.</summary>
    private string? ShareFromRoot(string? value)
    {
        if (Collectives.WorldSize == 1) return value;
        var bytes = value is null ? [] : System.Text.Encoding.UTF8.GetBytes(value);
        long length = (long)Collectives.AllReduceSum(Collectives.IsRoot ? (value is null ? -1 : bytes.Length) : 0)[0];
        if (length < 0) return null;
        var padded = new byte[length];
        if (Collectives.IsRoot) bytes.CopyTo(padded, 0);
        return System.Text.Encoding.UTF8.GetString(Collectives.AllGather(padded)[0]);
    }

    /// <summary>Every rank must hold the same weights and EMA weights; a difference stops the run (collective).</summary>
    private void CheckRanksAgree(DecoderTrainer trainer)
    {
        var (sum, squares) = trainer.Fingerprint();
        var all = Collectives.AllGather([.. BitConverter.GetBytes(sum), .. BitConverter.GetBytes(squares)]);
        if (all.Any(b => !b.AsSpan().SequenceEqual(all[0])))
            throw new InvalidOperationException("data-parallel ranks hold different weights (fingerprints " +
                string.Join(", ", all.Select(b => $"{BitConverter.ToDouble(b, 0):R}")) + "): stopping; the last checkpoint is kept");
    }

    /// <summary>Stops a run whose last MaxConsecutiveNonFinite steps of a unet were all skipped (the checkpoint stays good).</summary>
    private static void StopOnNonFiniteRun(DecoderTrainer trainer, int unet)
    {
        if (trainer.ConsecutiveNonFinite >= MaxConsecutiveNonFinite)
            throw new InvalidOperationException($"{trainer.ConsecutiveNonFinite} non-finite losses in a row (unet {unet}, step " +
                $"{trainer.Steps[unet - 1]}): stopping; the last good checkpoint is kept. Lower train.lr or check the data.");
    }

    private void Guarded(RunTracker tracker, int epoch, string phase, Action action)
    {
        try { action(); }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException or UserInputException or ConfigException))
        {
            ReportFailure(tracker, epoch, phase, $"{e.Message} ({e.GetType().Name})");
        }
    }

    private static void ReportFailure(RunTracker tracker, int epoch, string phase, string cause)
    {
        tracker.Print($"warning: {phase} failed in epoch {epoch}: {cause}; training goes on");
        tracker.Log(new Dictionary<string, object?> { ["Epoch"] = epoch, [$"{char.ToUpperInvariant(phase[0])}{phase[1..]} error"] = cause });
    }

    /// <summary>
    /// Real and generated images of n examples: one grid PNG under data_path/samples, and to the logger,
    /// as upstream, one real|generated pair per example in "Train Samples" / "Test Samples" with captions.
    /// </summary>
    private void SampleGrids(RunTracker tracker, DecoderTrainer trainer, DecoderDataset dataset, ShardSplits splits, int epoch,
        IReadOnlyList<double> condScale, Device device, long step, Clip.ClipStage? clip, string? tag = null)
    {
        int n = _config.Train.NSampleImages;
        if (n <= 0) return;
        var sets = tag is null ? new[] { ("train", splits.Train), ("test", splits.Test) } : new[] { ("train", splits.Train) };
        foreach (var (name, shards) in sets)
        {
            if (shards.Count == 0) continue;
            using var scope = NewDisposeScope();
            var raw = new DecoderDataLoader(shards, dataset,
                new LoaderOptions { BatchSize = n, NumWorkers = 1, MaxSamples = n, Seed = _config.Seed }).FirstOrDefault();
            if (raw is null) continue;
            using var rawBatch = raw;
            var batch = clip?.Embed(raw) ?? raw;
            using (batch)
            {
                var clock = Stopwatch.StartNew();
                var images = trainer.SampleTrained(batch.ImageEmbeddings?.to(device), batch.TextEncodings?.to(device), batch.Images.to(device),
                    new SampleOptions { CondScale = condScale, Generator = new Generator((ulong)_config.Seed + GridSeedOffset, device) });
                double imagesPerSecond = images.shape[0] / clock.Elapsed.TotalSeconds;
                var path = Path.Combine(tracker.DataPath, "samples", $"epoch{epoch:D3}{tag}_{name}.png");
                SampleGrid.Save(path, batch.Images, images.cpu());
                tracker.Print($"sample grid: {path} (top: real, bottom: generated; sampled at {imagesPerSecond:F2} images/s)");
                if (tracker.Logger is null) continue;
                string section = name == "train" ? "Train Samples" : "Test Samples", prefix = name == "train" ? "Train: " : "Test: ";
                var pairs = SampleGrid.SavePairs(Path.Combine(tracker.DataPath, "samples", "pairs", name), batch.Images, images.cpu());
                tracker.LogImages(section, pairs.Select((p, i) => p with { Caption = prefix + batch.Captions[i] }).ToList(), step);
            }
        }
    }

    private void Save(RunTracker tracker, DecoderTrainer trainer, Generator generator, int epoch, long sample, string nextTask,
        List<double> validation, long samplesSeen, bool isBest, bool epochEnd = false)
    {
        var checkpoint = Path.Combine(tracker.DataPath, "checkpoint.pth");
        var extras = new Dictionary<string, object?>
        {
            ["epoch"] = epoch, ["sample"] = sample, ["next_task"] = epochEnd ? "train" : nextTask,
            ["validation_losses"] = new System.Collections.ArrayList(validation.Cast<object>().ToArray()),
            ["samples_seen"] = samplesSeen,
            ["config"] = PickleValues.FromJson(System.Text.Json.Nodes.JsonNode.Parse(ConfigWriter.ToJson(_config))),
            ["rng_state"] = generator.get_state(),
        };
        if (Collectives.WorldSize > 1)
        {
            // Collective: every rank's generator (exact resume with as many ranks) and a check that all hold the same weights.
            using var state = generator.get_state();
            var states = Collectives.AllGather(state.bytes.ToArray());
            extras["rng_states"] = new System.Collections.ArrayList(states.Select(b => (object)tensor(b, dtype: ScalarType.Byte)).ToArray());
            CheckRanksAgree(trainer);
        }
        if (!Collectives.IsRoot) return;
        // An epoch-end checkpoint resumes at the start of the next epoch; a mid-epoch one at its sample.
        if (epochEnd) (extras["epoch"], extras["sample"]) = (epoch + 1, 0L);
        Checkpoint.Save(checkpoint, trainer, extras);
        tracker.RecordCheckpoint(checkpoint);
        string? modelFile = null;
        // The fields upstream formats save paths with: at an epoch's end it passes sample 0 and next_task "sample".
        var fields = new Dictionary<string, object>
        {
            ["epoch"] = epoch, ["sample"] = epochEnd ? 0L : sample, ["next_task"] = epochEnd ? "sample" : nextTask,
            ["samples_seen"] = samplesSeen,
            ["validation_losses"] = "[" + string.Join(", ",
                validation.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))) + "]",
        };
        string message = $"{(epochEnd ? $"End of epoch {epoch}" : $"Epoch {epoch}, sample {sample}")}: {samplesSeen:N0} samples seen" +
                         (validation.Count > 0 ? $", validation loss {validation[^1]:F5}" : "");
        tracker.Save(checkpoint, () => modelFile ??= SaveModelFile(tracker, trainer), fields, isBest, message);
        tracker.Print($"saved {checkpoint}{(isBest ? " (best)" : "")}");
    }

    /// <summary>
    /// Upstream's model.pth: {version, config, model} where model is the decoder's state dict with the
    /// EMA unets' weights (when use_ema) under the online unets' key names — what sampling uses.
    /// </summary>
    private string SaveModelFile(RunTracker tracker, DecoderTrainer trainer)
    {
        var path = Path.Combine(tracker.DataPath, "model.pth");
        var model = new System.Collections.Specialized.OrderedDictionary();
        foreach (var (key, value) in trainer.Decoder.state_dict()) model[key] = trainer.Float32(value);
        if (trainer.Ema is { } ema)
            for (int i = 0; i < ema.Count; i++)
                foreach (var (key, value) in ema[i].Averaged.state_dict()) model[$"unets.{i}.{key}"] = value;
        var root = new System.Collections.Specialized.OrderedDictionary
        {
            ["version"] = Checkpoint.UpstreamVersion,
            ["config"] = PickleValues.FromJson(System.Text.Json.Nodes.JsonNode.Parse(ConfigWriter.ToJson(_config))),
            ["model"] = model,
        };
        TorchFiles.SaveStateDict(path, root);
        return path;
    }
}
