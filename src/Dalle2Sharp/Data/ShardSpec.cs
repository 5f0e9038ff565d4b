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
        var mine = urls.Skip((int)(rank * per)).Take((int)per).ToList();
        int n = mine.Count;
        int numTrain = (int)Math.Round(data.Splits.Train * n, MidpointRounding.ToEven);
        int numTest = (int)Math.Round(data.Splits.Test * n, MidpointRounding.ToEven);
        int numVal = n - numTrain - numTest;
        if (numVal < 0) throw new UserInputException($"data.splits give {numTrain} train and {numTest} test shards out of {n}");
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        using var permutation = randperm(n, generator: generator);
        var order = permutation.data<long>().ToArray();
        var permuted = order.Select(i => mine[(int)i]).ToList();
        return new ShardSplits(permuted[..numTrain], permuted[(numTrain + numTest)..], permuted[numTrain..(numTrain + numTest)]);
    }

    /// <summary>
    /// Shard URLs: "{}" replaced by the zero-padded number for start..end, or a brace range
    /// ("shards/{000..099}.tar", as webdataset accepts) expanded as written.
    /// </summary>
    public static IReadOnlyList<Shard> Urls(string baseUrl, long start, long end, int width)
    {
        if (baseUrl.Contains("{}"))
        {
            var list = new List<Shard>();
            for (long s = start; s <= end; s++)
                list.Add(new Shard(s, baseUrl.Replace("{}", s.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0'))));
            return list;
        }
        var m = BraceRange().Match(baseUrl);
        if (!m.Success) throw new UserInputException($"data.webdataset_base_url \"{baseUrl}\" has neither {{}} nor a brace range");
        string lo = m.Groups[1].Value, hi = m.Groups[2].Value;
        int padding = lo.Length;
        var expanded = new List<Shard>();
        for (long s = long.Parse(lo, CultureInfo.InvariantCulture); s <= long.Parse(hi, CultureInfo.InvariantCulture); s++)
            expanded.Add(new Shard(s, baseUrl[..m.Index] + s.ToString(CultureInfo.InvariantCulture).PadLeft(padding, '0') + baseUrl[(m.Index + m.Length)..]));
        return expanded;
    }

    [GeneratedRegex(@"\{(\d+)\.\.(\d+)\}")]
    private static partial Regex BraceRange();
}
