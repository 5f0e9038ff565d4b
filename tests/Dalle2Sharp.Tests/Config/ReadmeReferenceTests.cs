using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Config;

public class ReadmeReferenceTests
{
    [Fact]
    public void ReadmeConfigReferenceMatchesTheConfigModel()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        const string start = "<!-- config-reference:start -->\n", end = "<!-- config-reference:end -->";
        int from = readme.IndexOf(start, StringComparison.Ordinal) + start.Length;
        int to = readme.IndexOf(end, StringComparison.Ordinal);
        Assert.True(from >= start.Length && to > from, "README lacks the config-reference markers");
        Assert.True(readme[from..to] == ConfigSchema.Markdown(),
            "README's config reference is stale: replace the text between the markers with `dalle2 config reference`");
    }

    [Fact]
    public void ReferenceListsEveryOptionOfEverySection()
    {
        var md = ConfigSchema.Markdown();
        foreach (var type in new[] { typeof(TrainDecoderConfig), typeof(DecoderConfig), typeof(UnetConfig), typeof(DataConfig), typeof(TrainConfig),
                                     typeof(EvaluateConfig), typeof(TrackerConfig), typeof(TrackerLogConfig), typeof(TrackerLoadConfig), typeof(TrackerSaveConfig),
                                     typeof(RandomResizedCropConfig), typeof(KidConfig), typeof(ClipConfig) })
            foreach (var m in ConfigMetadata.Members(type))
                Assert.Contains($"| `{m.Key}` |", md);
        Assert.Contains("#### `decoder.unets[]`", md);
        Assert.Contains("#### `data.preprocessing.RandomResizedCrop`", md);
        Assert.Contains("#### `tracker.save[]`", md);
    }
}
