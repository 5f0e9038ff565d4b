using System.Text;
using System.Text.Json.Nodes;
using Dalle2Sharp.Clip;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Clip;

/// <summary>
/// CLIP against openai/CLIP run by PyTorch 1.13 (tests/reference/make_clip_vectors.py): a small ViT CLIP
/// with seeded weights saved as OpenAI's releases are (a traced TorchScript archive, fp16 weights),
/// read here without a TorchScript runtime; encode_image, encode_text and DALLE2-pytorch 1.15.6's
/// OpenAIClipAdapter outputs within 1e-4 (float32 on both sides; only summation order differs).
/// </summary>
public sealed class ClipModelTests
{
    private const double Tolerance = 1e-4;
    private static readonly string Folder = ClipTestFiles.Vectors;
    private static readonly JsonObject Reference = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "clip_reference.json")))!["models"]!["ViT-Tiny"]!.AsObject();
    private static readonly Lazy<ClipModel> Model = new(() => ClipWeights.Build(ClipTestFiles.ViTTiny));

    private static Tensor Array(JsonNode node) =>
        tensor(node["values"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray(), node["shape"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray());

    private static Tensor Tokens(JsonNode texts) =>
        tensor(texts["tokens"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<long>())).ToArray(),
            [texts["tokens"]!.AsArray().Count, 77]);

    private static void Close(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual.to(float32)).abs().max().item<float>();
        Assert.True(diff < Tolerance, $"{what}: max |Δ| {diff:E2}");
    }

    [Fact]
    public void TheArchiveLoadsAndItsShapesGiveTheHyperparameters()
    {
        var hp = Model.Value.Hyperparameters;
        var expected = Reference["hyperparameters"]!;
        Assert.Equal(
            (expected["embed_dim"]!.GetValue<int>(), expected["image_resolution"]!.GetValue<int>(), expected["vision_layers"]!.GetValue<int>(),
             expected["vision_width"]!.GetValue<int>(), expected["vision_patch_size"]!.GetValue<int>(), expected["context_length"]!.GetValue<int>(),
             expected["vocab_size"]!.GetValue<int>(), expected["transformer_width"]!.GetValue<int>(), expected["transformer_layers"]!.GetValue<int>()),
            (hp.EmbedDim, hp.ImageResolution, hp.VisionLayers, hp.VisionWidth, hp.VisionPatchSize, hp.ContextLength, hp.VocabSize,
             hp.TransformerWidth, hp.TransformerLayers));
        // Every archive tensor the model has, by openai/CLIP's state_dict names.
        var archive = Reference["archive_tensors"]!.AsArray().Select(t => t![0]!.GetValue<string>()).ToHashSet();
        Assert.All(Model.Value.state_dict().Keys, k => Assert.Contains(k, archive));
    }

    [Fact]
    public void EncodeImageAndEncodeTextEqualOpenAiClip()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var images = Reference["images"]!;
        Close(Array(images["encode_image"]!), Model.Value.EncodeImage(Array(images["pixels"]!)), "encode_image");
        var texts = Reference["texts"]!;
        Close(Array(texts["encode_text"]!), Model.Value.EncodeText(Tokens(texts)), "encode_text");
    }

    [Fact]
    public void AdapterEmbeddingsEqualDalle2Pytorch()
    {
        using var scope = NewDisposeScope();
        var embedder = new ClipEmbedder(Model.Value);
        var images = Reference["images"]!;
        Close(Array(images["adapter_image_embed"]!), embedder.EmbedImage(Array(images["pixels_raw"]!)), "image embedding");
        var texts = Reference["texts"]!;
        var (embed, encodings) = embedder.EmbedText(Tokens(texts));
        Close(Array(texts["adapter_text_embed"]!), embed, "text embedding");
        Close(Array(texts["adapter_text_encodings"]!), encodings, "text encodings");
        // The mask: up to and including the first end-of-text token, and never a 0 id (CLIP's "!" included, as upstream).
        var mask = texts["adapter_text_mask"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<bool>())).ToArray();
        var zeroRows = encodings.abs().sum(-1).eq(0).logical_not().flatten().data<bool>().ToArray();
        Assert.Equal(mask, zeroRows);
        // Smaller images than CLIP's input are refused, as upstream asserts.
        Assert.Contains("smaller than CLIP's input size", Assert.Throws<UserInputException>(() => embedder.EmbedImage(zeros(1, 3, 16, 16))).Message);
    }

    [Fact]
    public void TheTokenizerGivesTheReferenceTokensForTheModelCaptions()
    {
        var texts = Reference["texts"]!;
        var captions = texts["captions"]!.AsArray().Select(c => c!.GetValue<string>()).ToList();
        using var tokens = ClipTokenizer.Shared.Tokenize(captions);
        using var expected = Tokens(texts);
        Assert.Equal(expected.data<long>().ToArray(), tokens.data<long>().ToArray());
    }

    [Fact]
    public void SafetensorsWithTheSameKeysGiveTheSameModelAndResNetsAreRefused()
    {
        using var dir = new TestPaths.TempDir();
        var path = dir.File("model.safetensors");
        WriteSafetensors(path, Model.Value.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        using var copy = ClipWeights.Build(path);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var tokens = Tokens(Reference["texts"]!);
        Assert.Equal(Model.Value.EncodeText(tokens).data<float>().ToArray(), copy.EncodeText(tokens).data<float>().ToArray());

        var resnet = Model.Value.state_dict().Where(kv => kv.Key != "visual.proj").ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Contains("ModifiedResNet", Assert.Throws<UserInputException>(() => ClipHyperparameters.Infer(resnet, "RN50.pt")).Message);
        Assert.Contains("not supported", Assert.Throws<UserInputException>(() => ClipWeights.Locate("RN50", dir.Path, null)).Message);
    }

    /// <summary>The safetensors layout open_clip's Hub files use: header size, JSON header, float32 bytes.</summary>
    private static void WriteSafetensors(string path, Dictionary<string, Tensor> tensors)
    {
        var header = new JsonObject();
        var data = new MemoryStream();
        foreach (var (key, t) in tensors)
        {
            var bytes = t.to(float32).contiguous().bytes.ToArray();
            header[key] = new JsonObject
            {
                ["dtype"] = "F32", ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode?)d).ToArray()),
                ["data_offsets"] = new JsonArray(data.Length, data.Length + bytes.Length),
            };
            data.Write(bytes);
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var file = File.Create(path);
        file.Write(BitConverter.GetBytes((long)json.Length));
        file.Write(json);
        data.Position = 0;
        data.CopyTo(file);
    }
}
