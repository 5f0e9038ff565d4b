using System.Text.RegularExpressions;
using Dalle2Sharp.Models;

namespace Dalle2Sharp.Tests.Models;

public class UnetStructureTests
{
    private static List<(string Key, long[] Shape)> Expected(string variant) =>
        Vectors.Json("test_unet_structure.json")[variant]!.AsArray()
            .Select(e => ((string)e![0]!, e[1]!.AsArray().Select(d => (long)d!).ToArray())).ToList();

    private static List<(string Key, long[] Shape)> Ours(Unet unet) =>
        unet.state_dict().Select(kv => (kv.Key, kv.Value.shape)).ToList();

    [Theory]
    [InlineData("unet_as_configured", false)]
    [InlineData("decoder_unet", true)]
    public void KeysAndShapesEqualUpstream(string variant, bool decoderCast)
    {
        using var unet = new Unet(decoderCast ? TestUnets.DecoderCast() : TestUnets.TestConfig());
        var ours = Ours(unet).OrderBy(k => k.Key, StringComparer.Ordinal).ToList();
        var expected = Expected(variant);
        var missing = expected.Select(e => e.Key).Except(ours.Select(o => o.Key)).ToList();
        var extra = ours.Select(o => o.Key).Except(expected.Select(e => e.Key)).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0, $"missing: {string.Join(", ", missing.Take(10))}; extra: {string.Join(", ", extra.Take(10))}");
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Shape.SequenceEqual(ours[i].Shape), $"{expected[i].Key}: expected [{string.Join(",", expected[i].Shape)}], got [{string.Join(",", ours[i].Shape)}]");
    }

    [Theory]
    [InlineData(false, 4_276_195)]
    [InlineData(true, 4_374_678)]
    public void ParameterCountsEqualUpstream(bool decoderCast, long expected)
    {
        using var unet = new Unet(decoderCast ? TestUnets.DecoderCast() : TestUnets.TestConfig());
        Assert.Equal(expected, unet.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void StateDictOrderEqualsUpstreamRegistrationOrder()
    {
        // Appendix A of the spec lists the 479 keys in state_dict order.
        var spec = File.ReadAllText(TestPaths.SharedFile("reference", "upstream-spec.md"));
        int start = spec.IndexOf("## Appendix A", StringComparison.Ordinal);
        int end = spec.IndexOf("## Appendix B", StringComparison.Ordinal);
        var keys = Regex.Matches(spec[start..end], @"^([a-z_][\w.]*)\s+\[[\d, ]+\]\s*$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(479, keys.Count);
        using var unet = new Unet(TestUnets.DecoderCast());
        Assert.Equal(keys, unet.state_dict().Keys.ToList());
    }

    [Fact]
    public void MediumUnetParameterCountEqualsUpstream()
    {
        var c = new Dalle2Sharp.Config.UnetConfig { Dim = 64, ImageEmbedDim = 768, Channels = 3, DimMults = [1, 2, 4], SelfAttn = new([false, true, true]) };
        using (var unet = new Unet(c)) Assert.Equal(15_649_091, unet.parameters().Sum(p => p.numel()));
        c.CondOnImageEmbeds = true;
        c.ChannelsOut = 6;
        using (var cast = new Unet(c)) Assert.Equal(16_043_014, cast.parameters().Sum(p => p.numel()));
    }
}
