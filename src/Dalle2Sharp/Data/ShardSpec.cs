using System.Globalization;
using System.Text.RegularExpressions;
using Dalle2Sharp.Config;
using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>One webdataset shard: its number and where to read it.</summary>
public sealed record Shard(long Number, string Url)
{
    public override string ToString() => Url;
}

/// <summary>The train / val / test shard lists of a config, exactly as upstream's train_decoder.py makes them.</summary>
public sealed record ShardSplits(IReadOnlyList<Shard> Train, IReadOnlyList<Shard> Val, IReadOnlyList<Shard> Test);

public static partial class ShardSpec
{
    /// <summary>
    /// Shards start..end (inclusive) for this rank (contiguous slice of ⌊N/W⌋ shards, remainder dropped,
    /// as upstream), then split with torch's random_split seeded with <paramref name="seed"/>:
    /// lengths [round(train·N), round(test·N), rest] in the order train, TEST, val (upstream's order).
    /// </summary>
    public static ShardSplits Split(DataConfig data, long seed, int rank = 0, int worldSize = 1)
    {
        var urls = Urls(data.WebdatasetBaseUrl, data.StartShard, data.EndShard, data.ShardWidth);
        long per = urls.Count / worldSize;
        if (per == 0) throw new UserInputException($"{urls.Count} shard(s) cannot be shared by {worldSize} processes");
        int n = (int)per, first = (int)(rank * per);
        int numTrain = (int)Math.Round(data.Splits.Train * n, MidpointRounding.ToEven);
        int numTest = (int)Math.Round(data.Splits.Test * n, MidpointRounding.ToEven);
        int numVal = n - numTrain - numTest;
        if (numVal < 0) throw new UserInputException($"data.splits give {numTrain} train and {numTest} test shards out of {n}");
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        using var permutation = randperm(n, generator: generator, dtype: ScalarType.Int32);
        var order = permutation.data<int>().ToArray();
        IReadOnlyList<Shard> Part(int from, int count) => new ShardList(count, i => urls[first + order[from + i]]);
        return new ShardSplits(Part(0, numTrain), Part(numTrain + numTest, numVal), Part(numTrain, numTest));
    }

    /// <summary>
    /// Shard URLs: "{}" replaced by the zero-padded number for start..end, or a brace range
    /// ("shards/{000..099}.tar", as webdataset accepts) expanded as written. The list is computed on
    /// access, so upstream's open-ended ranges (end_shard 9999999) cost no memory per shard.
    /// </summary>
    public static IReadOnlyList<Shard> Urls(string baseUrl, long start, long end, int width)
    {
        if (baseUrl.Contains("{}"))
            return Range(start, end, s => baseUrl.Replace("{}", s.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0')));
        var m = BraceRange().Match(baseUrl);
        if (!m.Success) throw new UserInputException($"data.webdataset_base_url \"{baseUrl}\" has neither {{}} nor a brace range");
        string lo = m.Groups[1].Value, hi = m.Groups[2].Value;
        int padding = lo.Length;
        return Range(long.Parse(lo, CultureInfo.InvariantCulture), long.Parse(hi, CultureInfo.InvariantCulture),
            s => baseUrl[..m.Index] + s.ToString(CultureInfo.InvariantCulture).PadLeft(padding, '0') + baseUrl[(m.Index + m.Length)..]);
    }

    /// <summary>Shards torch's randperm and .NET lists can index (2³¹ − 1): far beyond any real dataset.</summary>
    private static IReadOnlyList<Shard> Range(long start, long end, Func<long, string> url)
    {
        long count = end - start + 1;
        if (count <= 0) return [];
        if (count > int.MaxValue) throw new UserInputException($"shards {start}..{end}: more than {int.MaxValue} shards");
        return new ShardList((int)count, i => new Shard(start + i, url(start + i)));
    }

    /// <summary>A read-only list whose shards are made when read.</summary>
    private sealed class ShardList(int count, Func<int, Shard> at) : IReadOnlyList<Shard>
    {
        public int Count => count;
        public Shard this[int index] => (uint)index < (uint)count ? at(index) : throw new ArgumentOutOfRangeException(nameof(index));
        public IEnumerator<Shard> GetEnumerator() { for (int i = 0; i < count; i++) yield return at(i); }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>
    /// The embedding row of a sample: the last <paramref name="indexWidth"/> digits of its key (img2dataset's
    /// index within the shard), as upstream's embedding reader and `dalle2 embed` use them.
    /// </summary>
    public static bool TryRowIndex(string key, int indexWidth, out long row)
    {
        string name = key[(key.LastIndexOf('/') + 1)..];
        string digits = name.Length > indexWidth ? name[^indexWidth..] : name;
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out row);
    }

    [GeneratedRegex(@"\{(\d+)\.\.(\d+)\}")]
    private static partial Regex BraceRange();
}
