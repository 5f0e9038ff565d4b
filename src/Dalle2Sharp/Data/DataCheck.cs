using System.Globalization;
using Dalle2Sharp.Config;
using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>One shard's findings.</summary>
public sealed record ShardCheck(Shard Shard, string Split, bool Opened, int Samples, int BadKeys, int MissingImages, int MissingCaptions,
    int CorruptImages, long EmbeddingRows, int MissingRows, int ZeroRows, IReadOnlyList<string> Problems);

/// <summary>The verdict of `dalle2 data check`.</summary>
public sealed record DataCheckReport(IReadOnlyList<ShardCheck> Shards, long ShardsWithoutEmbeddings, IReadOnlyDictionary<string, int> UsableBySplit,
    IReadOnlyList<string> Problems)
{
    public bool Ok => Problems.Count == 0 && Shards.All(s => s.Problems.Count == 0);
}

/// <summary>
/// `dalle2 data check`: before a long run, reads what training will read — every shard of the config's
/// range that has embeddings (or every shard, without an embedding folder), its keys, the embedding
/// files' rows and width, all-zero rows of present keys, key widths against shard_width/index_width, and
/// which split each usable shard falls in — without decoding images unless asked.
/// </summary>
public static class DataCheck
{
    /// <summary>Shards opened at most without an embedding folder to narrow the range (a typo in end_shard should not start a day of
    /// reading).</summary>
    public const int MaxShardsWithoutEmbeddings = 100_000;

    public static DataCheckReport Run(TrainDecoderConfig config, bool decode, Action<string> progress, CancellationToken cancel = default)
    {
        var d = config.Data;
        var problems = new List<string>();
        var splits = ShardSpec.Split(d, config.Seed);
        var issues = new DataIssues(_ => { });
        var images = d.ImgEmbeddingsUrl is { } img ? new EmbeddingStore(img, d.Timeouts) : null;
        var texts = d.TextEmbeddingsUrl is { } txt ? new EmbeddingStore(txt, d.Timeouts) : null;
        long? width = config.Decoder.Unets.FirstOrDefault()?.ImageEmbedDim;
        var all = new[] { ("train", splits.Train), ("val", splits.Val), ("test", splits.Test) };
        long total = all.Sum(s => (long)s.Item2.Count);
        if (images is null && texts is null && total > MaxShardsWithoutEmbeddings)
            throw new UserInputException($"{total:N0} shards in start_shard..end_shard and no embedding folder to tell which exist: " +
                                         $"narrow the range (at most {MaxShardsWithoutEmbeddings:N0} are checked)");
        var results = new List<ShardCheck>();
        long withoutEmbeddings = 0;
        var usable = new Dictionary<string, int> { ["train"] = 0, ["val"] = 0, ["test"] = 0 };
        foreach (var (split, shards) in all)
        {
            // Shards with embedding files are the ones training reads; the rest are counted (training skips them too).
            IEnumerable<Shard> candidates = images is null && texts is null ? shards
                : images is not null ? EnumerateWith(shards, images) : EnumerateWith(shards, texts!);
            long candidateCount = 0;
            foreach (var shard in candidates)
            {
                if (cancel.IsCancellationRequested) break;
                candidateCount++;
                var check = CheckShard(shard, split, d, images, texts, width, decode, issues);
                results.Add(check);
                if (check.Opened && check.Samples > 0 && check.Problems.Count == 0) usable[split]++;
                progress($"{split} {shard.Url}: {check.Samples} samples{(check.Problems.Count > 0 ? "; " + string.Join("; ", check.Problems) : "")}");
            }
            withoutEmbeddings += shards.Count - candidateCount;
        }
        foreach (var (split, count) in usable)
            if (count == 0) problems.Add($"the {split} split gets no usable shard (seed {config.Seed}, splits " +
                $"{d.Splits.Train}/{d.Splits.Val}/{d.Splits.Test})");
        return new DataCheckReport(results, withoutEmbeddings, usable, problems);
    }

    /// <summary>The shards of a split that have a file in <paramref name="store"/>, in split order, without walking millions of missing ones
    /// slowly.</summary>
    private static IEnumerable<Shard> EnumerateWith(IReadOnlyList<Shard> shards, EmbeddingStore store)
    {
        for (int i = 0; i < shards.Count; i++)
        {
            var shard = shards[i];
            if (store.HasShard(shard.Number)) yield return shard;
        }
    }

    private static ShardCheck CheckShard(Shard shard, string split, DataConfig d, EmbeddingStore? images, EmbeddingStore? texts, long? width,
                                         bool decode, DataIssues issues)
    {
        var problems = new List<string>();
        var keys = new List<string>();
        int missingImages = 0, missingCaptions = 0, corrupt = 0, badKeys = 0;
        bool opened = true;
        string paddedShard = shard.Number.ToString(CultureInfo.InvariantCulture).PadLeft(d.ShardWidth, '0');
        try
        {
            using var stream = Runtime.Storage.OpenRead(shard.Url, d.Timeouts);
            foreach (var sample in WebDatasetReader.Read(stream, shard.Url, issues))
            {
                string name = sample.Key[(sample.Key.LastIndexOf('/') + 1)..];
                keys.Add(name);
                if (name.Length != d.ShardWidth + d.IndexWidth || !name.StartsWith(paddedShard, StringComparison.Ordinal)
                    || !name[^d.IndexWidth..].All(char.IsAsciiDigit))
                    badKeys++;
                var imageExt = ImageDecoder.Extensions.FirstOrDefault(sample.Files.ContainsKey);
                if (imageExt is null) missingImages++;
                if (!sample.Files.ContainsKey("txt")) missingCaptions++;
                if (decode && imageExt is not null)
                {
                    try { ImageDecoder.Decode(sample.Files[imageExt], d.MaxImagePixels); }
                    catch (Exception e) when (e is InvalidDataException or ArgumentException or IOException) { corrupt++; }
                }
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException or UnauthorizedAccessException or InvalidDataException)
        {
            opened = false;
            problems.Add($"cannot be read: {e.Message}");
        }
        if (badKeys > 0)
            problems.Add($"{badKeys} key(s) are not {d.ShardWidth} digits of shard {paddedShard} + {d.IndexWidth} digits of index " +
                         "(check shard_width / index_width)");
        if (missingImages > 0) problems.Add($"{missingImages} sample(s) without an image");
        if (missingCaptions > 0) problems.Add($"{missingCaptions} sample(s) without a caption (.txt); training skips them");
        if (corrupt > 0) problems.Add($"{corrupt} image(s) do not decode");

        long rows = 0;
        int missingRows = 0, zeroRows = 0;
        foreach (var (store, what) in new[] { (images, "image"), (texts, "text") })
        {
            if (store is null || !opened) continue;
            NpyArray array;
            try { array = store.Load(shard.Number); }
            catch (Exception e) when (e is IOException or InvalidDataException or HttpRequestException)
            {
                problems.Add($"{what} embeddings {store.FileFor(shard.Number)}: {e.Message}");
                continue;
            }
            try
            {
                if (what == "image") rows = array.Shape[0];
                if (what == "image" && width is { } w && array.RowLength != w)
                    problems.Add($"{what} embeddings are {array.RowLength} wide, decoder.unets[0].image_embed_dim is {w}");
                foreach (var key in keys)
                {
                    if (!ShardSpec.TryRowIndex(key, d.IndexWidth, out long row)) continue;
                    if (row >= array.Shape[0]) { missingRows++; continue; }
                    if (!array.Row(row).ContainsAnyExcept(0f)) zeroRows++;
                }
            }
            finally { store.Release(shard.Number); }
        }
        if (missingRows > 0) problems.Add($"{missingRows} key(s) have no embedding row (the file is too short)");
        if (zeroRows > 0) problems.Add($"{zeroRows} key(s) have an all-zero embedding row (training skips them)");
        if (opened && keys.Count == 0) problems.Add("no samples");
        return new ShardCheck(shard, split, opened, keys.Count, badKeys, missingImages, missingCaptions, corrupt, rows, missingRows, zeroRows,
            problems);
    }
}
