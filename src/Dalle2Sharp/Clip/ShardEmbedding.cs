using System.Diagnostics;
using System.Globalization;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Runtime;
using static TorchSharp.torch;

namespace Dalle2Sharp.Clip;

/// <summary>What `dalle2 embed` writes and how.</summary>
public sealed record EmbedOptions
{
    public required IReadOnlyList<Shard> Shards { get; init; }
    public required string OutFolder { get; init; }
    public int ShardWidth { get; init; } = 6;
    public int IndexWidth { get; init; } = 4;
    /// <summary>Also text_emb/text_emb_{shard}.npy: CLIP's pooled text embeddings of the captions.</summary>
    public bool Text { get; init; }
    /// <summary>Also text_encodings/text_encodings_{shard}.npy: the per-token encodings cond_on_text_encodings uses.</summary>
    public bool TextEncodings { get; init; }
    public int BatchSize { get; init; } = 64;
    public int Workers { get; init; } = 2;
    public long MaxImagePixels { get; init; } = DataConfig.DefaultMaxImagePixels;
    public Runtime.IoTimeouts Timeouts { get; init; } = Runtime.IoTimeouts.Default;
}

/// <summary>
/// `dalle2 embed`: CLIP embeddings for every sample of a webdataset, written per shard in
/// clip-retrieval's layout (img_emb/img_emb_{shard}.npy, float16) with row i belonging to the key whose
/// last index_width digits are i — the order our reader expects, so no re-ordering step exists; rows of
/// missing keys are zero (the reader skips them). Images get CLIP's own preprocessing (bicubic resize of
/// the shorter side, centre crop, CLIP's normalisation). A shard whose files exist is skipped; files are
/// written atomically, so an interrupted shard is simply redone. Shards decode in parallel; CLIP runs one
/// batch at a time.
/// </summary>
public static class ShardEmbedding
{
    public sealed record Summary(int ShardsDone, int ShardsSkipped, long Images, double Seconds);

    private static string Padded(long shard, int width) => shard.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0');

    public static string[] OutputsFor(EmbedOptions o, long shard)
    {
        string s = Padded(shard, o.ShardWidth);
        var files = new List<string> { Path.Combine(o.OutFolder, "img_emb", $"img_emb_{s}.npy") };
        if (o.Text) files.Add(Path.Combine(o.OutFolder, "text_emb", $"text_emb_{s}.npy"));
        if (o.TextEncodings) files.Add(Path.Combine(o.OutFolder, "text_encodings", $"text_encodings_{s}.npy"));
        return [.. files];
    }

    public static Summary Run(ClipEmbedder clip, EmbedOptions o, DataIssues issues, Action<string> print, CancellationToken cancel = default)
    {
        var preprocessing = clip.Preprocessing();
        var data = new DataConfig
        {
            WebdatasetBaseUrl = "unused", IndexWidth = o.IndexWidth, ShardWidth = o.ShardWidth, Preprocessing = preprocessing,
            ReducedDecode = true, MaxImagePixels = o.MaxImagePixels, ConnectTimeout = o.Timeouts.Connect.TotalSeconds,
            StallTimeout = o.Timeouts.Stall.TotalSeconds,
        };
        var dataset = new DecoderDataset(data, issues, requireImageEmbedding: false);
        var clipLock = new object();
        var clock = Stopwatch.StartNew();
        long images = 0;
        int done = 0, skipped = 0;
        Parallel.ForEach(o.Shards, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, o.Workers), CancellationToken = cancel }, shard =>
        {
            var outputs = OutputsFor(o, shard.Number);
            if (outputs.All(File.Exists)) { Interlocked.Increment(ref skipped); return; }
            var shardClock = Stopwatch.StartNew();
            var rows = new Dictionary<long, (float[] Image, float[]? Text, float[]? Tokens)>();
            var pending = new List<DecoderSample>(o.BatchSize);
            void Flush()
            {
                if (pending.Count == 0) return;
                using var scope = NewDisposeScope();
                var batch = stack(pending.Select(p => p.Image).ToArray());
                float[] imageRows, textRows = [], tokenRows = [];
                long tokensPerRow = 0;
                lock (clipLock)
                {
                    imageRows = clip.EmbedImage(batch).cpu().data<float>().ToArray();
                    if (o.Text || o.TextEncodings)
                    {
                        var tokens = ClipTokenizer.Shared.Tokenize(pending.Select(p => p.Caption).ToList(), clip.MaxTextLength);
                        var (embed, encodings) = clip.EmbedText(tokens.to(clip.Model.parameters().First().device));
                        textRows = embed.cpu().data<float>().ToArray();
                        tokenRows = encodings.cpu().data<float>().ToArray();
                        tokensPerRow = encodings.shape[1] * encodings.shape[2];
                    }
                }
                for (int i = 0; i < pending.Count; i++)
                {
                    if (!ShardSpec.TryRowIndex(pending[i].Key, o.IndexWidth, out long row))
                    {
                        issues.Report(DataIssueKind.BadKey, shard.Url, pending[i].Key,
                            $"the last {o.IndexWidth} characters of the key are not a row number");
                        continue;
                    }
                    rows[row] = (imageRows.AsSpan(i * clip.EmbedDim, clip.EmbedDim).ToArray(),
                        o.Text ? textRows.AsSpan(i * clip.EmbedDim, clip.EmbedDim).ToArray() : null,
                        o.TextEncodings ? tokenRows.AsSpan((int)(i * tokensPerRow), (int)tokensPerRow).ToArray() : null);
                }
                foreach (var p in pending) p.Image.Dispose();
                pending.Clear();
            }
            using (var generator = new Generator(0))
                foreach (var sample in dataset.ReadShard(shard, generator, cancel))
                {
                    pending.Add(sample);
                    if (pending.Count == o.BatchSize) Flush();
                }
            Flush();
            if (cancel.IsCancellationRequested) return;
            long count = rows.Count == 0 ? 0 : rows.Keys.Max() + 1;
            Write(outputs[0], count, clip.EmbedDim, rows.ToDictionary(kv => kv.Key, kv => kv.Value.Image), [count, clip.EmbedDim]);
            int next = 1;
            if (o.Text) Write(outputs[next++], count, clip.EmbedDim, rows.ToDictionary(kv => kv.Key, kv => kv.Value.Text!), [count, clip.EmbedDim]);
            if (o.TextEncodings)
                Write(outputs[next], count, clip.MaxTextLength * clip.TextWidth, rows.ToDictionary(kv => kv.Key, kv => kv.Value.Tokens!),
                    [count, clip.MaxTextLength, clip.TextWidth]);
            Interlocked.Add(ref images, rows.Count);
            Interlocked.Increment(ref done);
            print($"shard {shard.Url}: {rows.Count} images in {shardClock.Elapsed.TotalSeconds:F1} s; " +
                  $"{Interlocked.Read(ref images) / clock.Elapsed.TotalSeconds:F1} images/s overall");
        });
        return new Summary(done, skipped, images, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Rows in key order, zeros where a key is missing, float16, written atomically.</summary>
    private static void Write(string path, long count, int width, Dictionary<long, float[]> rows, long[] shape)
    {
        var data = new float[count * width];
        foreach (var (row, values) in rows) values.CopyTo(data, row * width);
        AtomicFile.Write(path, s => Npy.Write(s, shape, data, float16: true));
    }
}
