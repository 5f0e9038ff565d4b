using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Dalle2Sharp.Clip;

/// <summary>
/// CLIP's byte-level BPE tokenizer (openai/CLIP simple_tokenizer): cleaned, lower-cased text split by
/// CLIP's pattern, each piece's UTF-8 bytes mapped to printable characters, merged by the 48,894 BPE
/// ranks, with &lt;|startoftext|&gt; / &lt;|endoftext|&gt; around each caption in tokenize. The vocabulary ships
/// inside the product (Clip/bpe_simple_vocab_16e6.txt.gz, MIT, OpenAI).
/// </summary>
public sealed partial class ClipTokenizer
{
    public const int StartOfText = 49406, EndOfText = 49407, DefaultContextLength = 77;
    private const int MergeCount = 49152 - 256 - 2;

    private readonly Dictionary<string, int> _encoder = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, string), int> _ranks = [];
    private readonly string[] _byteToChar = new string[256];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    public static ClipTokenizer Shared { get; } = new();

    private ClipTokenizer()
    {
        var (vocabOrder, byValue) = ByteAlphabet();
        _byteToChar = byValue;
        using var stream = typeof(ClipTokenizer).Assembly.GetManifestResourceStream("Dalle2Sharp.Clip.bpe_simple_vocab_16e6.txt.gz")
            ?? throw new InvalidOperationException("the CLIP BPE vocabulary is not embedded in this build");
        using var reader = new StreamReader(new GZipStream(stream, CompressionMode.Decompress), Encoding.UTF8);
        reader.ReadLine();   // "#version: 0.2"
        var merges = new List<(string, string)>(MergeCount);
        for (string? line; merges.Count < MergeCount && (line = reader.ReadLine()) is not null;)
        {
            var parts = line.Split(' ');
            merges.Add((parts[0], parts[1]));
        }
        var vocab = new List<string>(49408);
        vocab.AddRange(vocabOrder);
        vocab.AddRange(vocabOrder.Select(c => c + "</w>"));
        vocab.AddRange(merges.Select(m => m.Item1 + m.Item2));
        vocab.Add("<|startoftext|>");
        vocab.Add("<|endoftext|>");
        for (int i = 0; i < vocab.Count; i++) _encoder[vocab[i]] = i;
        for (int i = 0; i < merges.Count; i++) _ranks[merges[i]] = i;
    }

    /// <summary>
    /// GPT-2's reversible map of the 256 byte values to printable characters (bytes_to_unicode): the
    /// characters in the dict's order (the vocabulary's first 256 entries) and by byte value.
    /// </summary>
    private static (string[] VocabOrder, string[] ByValue) ByteAlphabet()
    {
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1))
            .Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var cs = bs.ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n++); }
        var byValue = new string[256];
        for (int i = 0; i < bs.Count; i++) byValue[bs[i]] = ((char)cs[i]).ToString();
        return (cs.Select(c => ((char)c).ToString()).ToArray(), byValue);
    }

    /// <summary>Token ids of a caption, without start/end tokens (SimpleTokenizer.encode).</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        text = TextCleaner.PythonLower(TextCleaner.Clean(text));
        foreach (Match m in Pattern().Matches(text))
        {
            var piece = new StringBuilder();
            foreach (byte b in Encoding.UTF8.GetBytes(m.Value)) piece.Append(_byteToChar[b]);
            foreach (var token in Bpe(piece.ToString())) ids.Add(_encoder[token]);
        }
        return ids;
    }

    private string[] Bpe(string token) => _cache.GetOrAdd(token, t =>
    {
        // The special tokens written in a caption stay whole (simple_tokenizer's cache holds them).
        if (t is "<|startoftext|>" or "<|endoftext|>") return [t];
        var word = t[..^1].Select(c => c.ToString()).Append(t[^1] + "</w>").ToList();
        if (word.Count == 1) return [t + "</w>"];
        while (true)
        {
            (string, string)? best = null;
            int bestRank = int.MaxValue;
            for (int i = 0; i < word.Count - 1; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out int rank) && rank < bestRank) (best, bestRank) = ((word[i], word[i + 1]), rank);
            if (best is not { } pair) break;
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count;)
            {
                if (i < word.Count - 1 && word[i] == pair.Item1 && word[i + 1] == pair.Item2) { merged.Add(pair.Item1 + pair.Item2); i += 2; }
                else merged.Add(word[i++]);
            }
            word = merged;
            if (word.Count == 1) break;
        }
        return word.ToArray();
    });

    /// <summary>
    /// clip.tokenize(texts, context_length, truncate=True): [N, context] int64 ids, zero-padded; a caption
    /// longer than the context is cut and its last token made &lt;|endoftext|&gt;.
    /// </summary>
    public Tensor Tokenize(IReadOnlyList<string> texts, int contextLength = DefaultContextLength)
    {
        var flat = new long[texts.Count * contextLength];
        for (int i = 0; i < texts.Count; i++)
        {
            var tokens = new List<int> { StartOfText };
            tokens.AddRange(Encode(texts[i]));
            tokens.Add(EndOfText);
            if (tokens.Count > contextLength)
            {
                tokens = tokens.GetRange(0, contextLength);
                tokens[^1] = EndOfText;
            }
            for (int j = 0; j < tokens.Count; j++) flat[i * contextLength + j] = tokens[j];
        }
        return tensor(flat, [texts.Count, contextLength]);
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase)]
    private static partial Regex Pattern();
}
