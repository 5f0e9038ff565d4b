using System.Text.Json.Nodes;
using Dalle2Sharp.Clip;

namespace Dalle2Sharp.Tests.Clip;

/// <summary>
/// The tokenizer against openai/CLIP's simple_tokenizer run by Python with ftfy 6.1.1 (vectors from
/// tests/reference/make_clip_vectors.py): the cleaned text, the BPE ids and clip.tokenize(truncate=True).
/// </summary>
public sealed class ClipTokenizerTests
{
    private static readonly JsonObject Reference =
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests/Dalle2Sharp.Tests/Clip/Vectors/tokenizer_reference.json")))!.AsObject();

    public static TheoryData<int> Cases() => new(Enumerable.Range(0, Reference["cases"]!.AsArray().Count));

    [Theory]
    [MemberData(nameof(Cases))]
    public void CleaningAndIdsEqualOpenAiClip(int index)
    {
        var c = Reference["cases"]![index]!;
        string text = c["text"]!.GetValue<string>();
        Assert.Equal(c["cleaned"]!.GetValue<string>(), TextCleaner.PythonLower(TextCleaner.Clean(text)));
        Assert.Equal(c["bpe"]!.AsArray().Select(v => v!.GetValue<int>()), ClipTokenizer.Shared.Encode(text));
        using var tokens = ClipTokenizer.Shared.Tokenize([text]);
        Assert.Equal(c["tokens77"]!.AsArray().Select(v => v!.GetValue<long>()), tokens.data<long>().ToArray());
    }
}
