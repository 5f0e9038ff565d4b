using System.Text.Json.Nodes;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Config;

public class ConfigRoundTripTests
{
    public static TheoryData<string> UpstreamConfigs => new() { "train_decoder_config.example.json", "train_decoder_config.test.json" };

    [Theory, MemberData(nameof(UpstreamConfigs))]
    public void UpstreamConfigLoadsUnchangedAndRoundTrips(string name)
    {
        var path = TestPaths.SharedFile("configs", name);
        var original = JsonNode.Parse(File.ReadAllText(path))!;
        var config = ConfigLoader.LoadFile(path);

        // Every value the file gives survives binding and appears in the resolved config unchanged.
        var shown = JsonNode.Parse(ConfigWriter.ToJson(config))!;
        AssertContains(original, shown, "");

        // The resolved config is itself a valid config that resolves to the same thing.
        var again = ConfigWriter.ToJson(ConfigLoader.Parse(shown.ToJsonString()));
        Assert.Equal(shown.ToJsonString(), JsonNode.Parse(again)!.ToJsonString());
    }

    [Fact]
    public void TestConfigValuesAreBound()
    {
        var c = ConfigLoader.LoadFile(TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        var unet = Assert.Single(c.Decoder.Unets);
        Assert.Equal(16, unet.Dim);
        Assert.Equal(768, unet.ImageEmbedDim);
        Assert.Equal([false, true, true, true], unet.SelfAttn.Expand(4));
        Assert.Equal(10, c.Decoder.Timesteps);
        Assert.Equal(["cosine"], c.Decoder.BetaSchedule!.List!);
        Assert.Equal("openai", c.Decoder.Clip!.Make);
        Assert.Equal(1e-16, c.Train.Lr.At(0));
        Assert.Equal(50, c.Train.EpochSamples);
        var crop = Assert.IsType<RandomResizedCropConfig>(c.Data.Preprocessing.Steps[0]);
        Assert.Equal([224, 224], crop.Size.List!);
        Assert.Equal([0.75, 1.0], crop.Scale);
        Assert.IsType<ToTensorConfig>(c.Data.Preprocessing.Steps[1]);
        Assert.Equal("latest.pth", Assert.Single(c.Tracker.Save).SaveLatestTo);
        Assert.Equal(2, c.Evaluate.KID!.SubsetSize);
    }

    [Fact]
    public void ExampleConfigSaversAndLoggerAreBound()
    {
        var c = ConfigLoader.LoadFile(TestPaths.SharedFile("configs", "train_decoder_config.example.json"));
        Assert.Equal("wandb", c.Tracker.Log.LogType);
        Assert.Equal("your_wandb", c.Tracker.Log.WandbEntity);
        Assert.Equal(["wandb", "huggingface"], c.Tracker.Save.Select(s => s.SaveTo));
        Assert.Equal("Veldrovive/test_model", c.Tracker.Save[1].HuggingfaceRepo);
        Assert.Equal("model", c.Tracker.Save[1].SaveType);
        Assert.Equal("pipe:s3cmd get s3://bucket/path/{}.tar -", c.Data.WebdatasetBaseUrl);
    }

    private static void AssertContains(JsonNode? expected, JsonNode? actual, string path)
    {
        switch (expected)
        {
            case JsonObject eo:
                var ao = Assert.IsType<JsonObject>(actual);
                foreach (var (key, value) in eo) AssertContains(value, ao[key], $"{path}.{key}");
                break;
            case JsonArray ea:
                var aa = Assert.IsType<JsonArray>(actual);
                Assert.True(ea.Count == aa.Count, $"{path}: {ea.Count} vs {aa.Count} items");
                for (int i = 0; i < ea.Count; i++) AssertContains(ea[i], aa[i], $"{path}[{i}]");
                break;
            case null:
                Assert.True(actual is null, $"{path}: expected null, got {actual?.ToJsonString()}");
                break;
            default:
                Assert.True(JsonNode.DeepEquals(expected, actual) || NumbersEqual(expected, actual),
                    $"{path}: expected {expected.ToJsonString()}, got {actual?.ToJsonString()}");
                break;
        }
    }

    private static bool NumbersEqual(JsonNode e, JsonNode? a) =>
        e is JsonValue ev && a is JsonValue av && ev.TryGetValue<double>(out var x) && av.TryGetValue<double>(out var y) && x == y;
}
