using System.Collections;
using System.Threading.Channels;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>A batch: images [B, 3, H, W] in [0, 1], image embeddings [B, D], text encodings [B, L, D] (zero-padded), captions, keys.</summary>
public sealed record DecoderBatch(Tensor Images, Tensor? ImageEmbeddings, Tensor? TextEncodings, IReadOnlyList<string> Captions,
                                  IReadOnlyList<string> Keys) : IDisposable
{
    public int Count => Keys.Count;

    public void Dispose()
    {
        Images.Dispose();
        ImageEmbeddings?.Dispose();
        TextEncodings?.Dispose();
    }
}

/// <summary>How one epoch's shards are read.</summary>
public sealed record LoaderOptions
{
    public int BatchSize { get; init; } = 64;
    /// <summary>Parallel decode workers (0 = 1). Each shard is read by exactly one worker per epoch.</summary>
    public int NumWorkers { get; init; } = 4;
    public bool Shuffle { get; init; }
    /// <summary>Draw shards with replacement, endlessly (bound it with MaxSamples).</summary>
    public bool Resample { get; init; }
    public long? MaxSamples { get; init; }
    public long Seed { get; init; }
    public int Epoch { get; init; }
    /// <summary>Batches each worker may have ready ahead of the consumer.</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>
    /// Put batches in page-locked host memory (for a CUDA device: the copy to it can then run asynchronously,
    /// `to(device, non_blocking: true)`). Needs a CUDA build of libtorch.
    /// </summary>
    public bool PinMemory { get; init; }
}

/// <summary>
/// Reads shards with parallel workers into batches. Worker w reads the shards at positions w, w+W, …
/// of the epoch's shard order (shuffled with a generator seeded by seed and epoch), builds its own
/// batches, and the consumer takes them round-robin — so for a seed and a worker count the order is
/// deterministic, and no shard is read twice. Random transforms draw from a generator per shard
/// visit, so the samples themselves do not depend on the worker count.
/// </summary>
public sealed class DecoderDataLoader(IReadOnlyList<Shard> shards, DecoderDataset dataset, LoaderOptions options) : IEnumerable<DecoderBatch>
{
    public IEnumerator<DecoderBatch> GetEnumerator()
    {
        int workers = Math.Max(1, options.NumWorkers);
        using var cancel = new CancellationTokenSource();
        var channels = new Channel<DecoderBatch>[workers];
        var tasks = new Task[workers];
        for (int w = 0; w < workers; w++)
        {
            var channel = Channel.CreateBounded<DecoderBatch>(
                new BoundedChannelOptions(Math.Max(1, options.Prefetch)) { SingleReader = true, SingleWriter = true });
            channels[w] = channel;
            int worker = w;
            tasks[w] = Task.Run(() => Work(worker, workers, channel.Writer, cancel.Token));
        }

        long produced = 0;
        var open = Enumerable.Range(0, workers).ToList();
        try
        {
            while (open.Count > 0)
            {
                foreach (var w in open.ToArray())
                {
                    DecoderBatch batch;
                    try
                    {
                        if (!channels[w].Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) { open.Remove(w); continue; }
                        if (!channels[w].Reader.TryRead(out batch!)) continue;
                    }
                    catch (ChannelClosedException e) when (e.InnerException is not null)
                    {
                        throw new IOException($"data worker {w} failed: {e.InnerException.Message}", e.InnerException);
                    }
                    if (options.MaxSamples is { } max && produced + batch.Count > max)
                    {
                        int keep = (int)(max - produced);
                        if (keep <= 0) { batch.Dispose(); yield break; }
                        var trimmed = Trim(batch, keep);
                        batch.Dispose();
                        batch = trimmed;
                    }
                    produced += batch.Count;
                    yield return batch;
                    if (options.MaxSamples is { } limit && produced >= limit) yield break;
                }
            }
        }
        finally
        {
            cancel.Cancel();
            foreach (var channel in channels)
                while (channel.Reader.TryRead(out var left)) left.Dispose();
            try { Task.WaitAll(tasks); } catch (AggregateException) { }
            foreach (var channel in channels)
                while (channel.Reader.TryRead(out var left)) left.Dispose();
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The epoch's shard order: as given, shuffled, or (resampling) drawn with replacement without end.</summary>
    private IEnumerable<(Shard Shard, ulong VisitSeed)> ShardsFor(int worker, int workers, CancellationToken cancel)
    {
        if (shards.Count == 0) yield break;
        if (options.Resample)
        {
            var g = new Generator(Mix(options.Seed, options.Epoch, worker, 0x5e5a));
            for (long visit = 0; !cancel.IsCancellationRequested; visit++)
            {
                int pick = (int)randint(0, shards.Count, [1], generator: g).item<long>();
                yield return (shards[pick], Mix(options.Seed, options.Epoch, worker, visit));
            }
            yield break;
        }
        IReadOnlyList<int> order = Enumerable.Range(0, shards.Count).ToArray();
        if (options.Shuffle)
        {
            using var perm = randperm(shards.Count, generator: new Generator(Mix(options.Seed, options.Epoch, -1, 0x5f)));
            order = perm.data<long>().Select(i => (int)i).ToArray();
        }
        for (int position = worker; position < order.Count; position += workers)
            yield return (shards[order[position]], Mix(options.Seed, options.Epoch, -1, position));
    }

    private async Task Work(int worker, int workers, ChannelWriter<DecoderBatch> writer, CancellationToken cancel)
    {
        Exception? failure = null;
        try
        {
            var pending = new List<DecoderSample>(options.BatchSize);
            foreach (var (shard, visitSeed) in ShardsFor(worker, workers, cancel))
            {
                var generator = new Generator(visitSeed);
                foreach (var sample in dataset.ReadShard(shard, generator, cancel))
                {
                    pending.Add(sample);
                    if (pending.Count == options.BatchSize)
                    {
                        await writer.WriteAsync(Pinned(Collate(pending)), cancel);
                        pending.Clear();
                    }
                }
                if (cancel.IsCancellationRequested) break;
            }
            if (pending.Count > 0 && !cancel.IsCancellationRequested) await writer.WriteAsync(Pinned(Collate(pending)), cancel);
        }
        catch (OperationCanceledException) { }
        catch (Exception e) { failure = e; }
        writer.TryComplete(failure);
    }

    public static DecoderBatch Collate(IReadOnlyList<DecoderSample> samples)
    {
        var sizes = samples.Select(s => (s.Image.shape[1], s.Image.shape[2])).Distinct().ToList();
        if (sizes.Count > 1)
            throw new UserInputException("images of one batch have different sizes " +
                                         $"({string.Join(", ", sizes.Select(s => $"{s.Item1}×{s.Item2}"))}): " +
                                         "add a RandomResizedCrop, Resize + CenterCrop to data.preprocessing");
        using var scope = NewDisposeScope();
        var images = stack(samples.Select(s => s.Image).ToArray()).MoveToOuterDisposeScope();
        foreach (var s in samples) s.Image.Dispose();
        Tensor? imageEmbeddings = samples[0].ImageEmbedding is null ? null
            : tensor(samples.SelectMany(s => s.ImageEmbedding!).ToArray()).reshape(samples.Count, -1);
        Tensor? textEncodings = null;
        if (samples[0].TextEncoding is { Shape.Length: 1 })
            textEncodings = tensor(samples.SelectMany(s => s.TextEncoding!.Data).ToArray()).reshape(samples.Count, -1);
        else if (samples[0].TextEncoding is not null)
        {
            long dim = samples[0].TextEncoding!.RowLength;
            long length = samples.Max(s => s.TextEncoding!.Rows);
            var padded = new float[samples.Count * length * dim];
            for (int i = 0; i < samples.Count; i++)
                samples[i].TextEncoding!.Data.CopyTo(padded, i * length * dim);
            textEncodings = tensor(padded).reshape(samples.Count, length, dim);
        }
        imageEmbeddings?.MoveToOuterDisposeScope();
        textEncodings?.MoveToOuterDisposeScope();
        return new DecoderBatch(images, imageEmbeddings, textEncodings,
                                samples.Select(s => s.Caption).ToArray(), samples.Select(s => s.Key).ToArray());
    }

    /// <summary>The batch in page-locked memory when <see cref="LoaderOptions.PinMemory"/> (made on the worker, as PyTorch's loader does).</summary>
    private DecoderBatch Pinned(DecoderBatch batch)
    {
        if (!options.PinMemory) return batch;
        using (batch)
            return batch with
            {
                Images = batch.Images.pin_memory(), ImageEmbeddings = batch.ImageEmbeddings?.pin_memory(),
                TextEncodings = batch.TextEncodings?.pin_memory(),
            };
    }

    private static DecoderBatch Trim(DecoderBatch batch, int keep) => new(
        batch.Images[..keep].clone(), batch.ImageEmbeddings?[..keep].clone(), batch.TextEncodings?[..keep].clone(),
        batch.Captions.Take(keep).ToArray(), batch.Keys.Take(keep).ToArray());

    private static ulong Mix(long seed, int epoch, int worker, long visit)
    {
        ulong h = 1469598103934665603UL;
        foreach (var v in new[] { seed, epoch, worker, visit })
        {
            h ^= (ulong)v;
            h *= 1099511628211UL;
            h ^= h >> 29;
        }
        return h;
    }
}
