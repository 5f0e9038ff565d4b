using System.Text.Json.Nodes;

namespace Dalle2Sharp.Tests.Config;

public class ConfigCliTests
{
    [Fact]
    public void ValidatePrintsOneLineSummary()
    {
        var r = CliRunner.Run("config", "validate", TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        Assert.Equal(0, r.ExitCode);
        var line = Assert.Single(r.Stdout.Trim().Split('\n'));
        Assert.Contains("valid — 1 unet(s) at 64 px, T=10", line);
    }

    [Fact]
    public void ValidateReportsEveryErrorWithExitCode2()
    {
        using var dir = new TestPaths.TempDir();
        var json = new ConfigFixture().Set("decoder.loss_type", "l3").Set("train.lerning_rate", 1).Json.ToJsonString();
        File.WriteAllText(dir.File("bad.json"), json);
        var r = CliRunner.Run("config", "validate", dir.File("bad.json"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("decoder.loss_type: \"l3\" is not one of l1, l2, huber", r.Stderr);
        Assert.Contains("train.lerning_rate: unknown key; did you mean lr?", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr); // no stack trace
    }

    [Fact]
    public void InvalidJsonAndMissingFileAreReportedNotThrown()
    {
        using var dir = new TestPaths.TempDir();
        File.WriteAllText(dir.File("broken.json"), "{\n  \"decoder\": [\n}");
        var r = CliRunner.Run("config", "validate", dir.File("broken.json"));
        Assert.Equal(2, r.ExitCode);
        Assert.Matches(@"broken\.json:3:1: invalid JSON", r.Stderr);

        var missing = CliRunner.Run("config", "validate", dir.File("nope.json"));
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("cannot read", missing.Stderr);
    }

    [Fact]
    public void ShowPrintsResolvedConfigWithDefaults()
    {
        var r = CliRunner.Run("config", "show", TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        Assert.Equal(0, r.ExitCode);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(16, (int)json["decoder"]!["unets"]![0]!["dim"]!);
        Assert.Equal(2, (int)json["decoder"]!["unets"]![0]!["num_resnet_blocks"]!);      // a default filled in
        Assert.Equal(".tracker_data", (string)json["tracker"]!["data_path"]!);           // a default filled in
    }

    [Fact]
    public void SchemaIsJsonSchemaOfEverySection()
    {
        var r = CliRunner.Run("config", "schema");
        Assert.Equal(0, r.ExitCode);
        var schema = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(["decoder", "data", "train", "evaluate", "tracker"], schema["required"]!.AsArray().Select(n => (string)n!));
        var unet = schema["properties"]!["decoder"]!["properties"]!["unets"]!["items"]!;
        Assert.False((bool)unet["additionalProperties"]!);
        Assert.Equal(["l1", "l2", "huber"], schema["properties"]!["decoder"]!["properties"]!["loss_type"]!["enum"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(0.999, (double)schema["properties"]!["train"]!["properties"]!["ema_beta"]!["default"]!);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("config", "--help")]
    [InlineData("config", "validate", "--help")]
    [InlineData("config", "show", "--help")]
    [InlineData("config", "schema", "--help")]
    public void EveryCommandHasHelp(params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("USAGE:", r.Stdout);
    }

    [Fact]
    public void DebugVariablePrintsTheWholeException()
    {
        string[] args = ["sample", "--checkpoint", "/nonexistent/ck.pth", "--image-embeddings", "e.npy", "--out", "o"];
        var plain = CliRunner.Run(args);
        Assert.Equal(2, plain.ExitCode);
        Assert.DoesNotContain("   at ", plain.Stderr);
        var debug = CliRunner.RunWith(Environment.CurrentDirectory, new Dictionary<string, string> { ["DALLE2_DEBUG"] = "1" }, args);
        Assert.Equal(2, debug.ExitCode);
        Assert.Contains("UserInputException", debug.Stderr);
        Assert.Contains("   at Dalle2Sharp", debug.Stderr);
    }
}
