using System.Text.Json.Nodes;
using Dalle2Sharp.Models;

namespace Dalle2Sharp.Tests.Models;

public class ModelSummaryTests
{
    [Fact]
    public void DecoderStateDictEqualsUpstream()
    {
        using var decoder = new Decoder(DecoderLossTests.TestDecoderConfig());
        var expected = Vectors.Json("test_unet_structure.json")["decoder"]!.AsArray()
            .Select(e => $"{(string)e![0]!} [{string.Join(",", e[1]!.AsArray().Select(d => (long)d!))}]").ToList();
        var ours = decoder.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").ToList();
        Assert.Equal(expected, ours);
        // Unets first, then the scheduler buffers in registration order (Appendix B).
        Assert.Equal("noise_schedulers.0.betas", decoder.state_dict().Keys.ElementAt(479));
    }

    [Fact]
    public void SummaryCommandReportsUpstreamCounts()
    {
        var r = CliRunner.Run("model", "summary", "--config", TestPaths.SharedFile("configs", "train_decoder_config.test.json"), "--json");
        Assert.Equal(0, r.ExitCode);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(4_374_678, (long)json["unets"]![0]!["parameters"]!);
        Assert.Equal(492, json["state_dict"]!.AsArray().Count);
        Assert.Equal(new long[] { 6, 16, 1, 1 }, json["state_dict"]!.AsArray().First(e => (string)e!["key"]! == "unets.0.to_out.weight")!["shape"]!.AsArray().Select(d => (long)d!));

        var text = CliRunner.Run("model", "summary", "--config", TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        Assert.StartsWith("unet 1: 4,374,678 parameters, 64 px", text.Stdout);
    }

    [Fact]
    public void SummaryWithoutConfigIsAnArgumentError()
    {
        var r = CliRunner.Run("model", "summary");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--config FILE is required", r.Stderr);
    }
}
