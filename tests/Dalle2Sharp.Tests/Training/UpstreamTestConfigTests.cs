using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Training;

namespace Dalle2Sharp.Tests.Training;

[Collection("Services")]   // one test sets DALLE2_WEIGHTS_MIRROR for the process
public class UpstreamTestConfigTests
{
    [Fact]
    public void UpstreamTestConfigWithClipStopsAtStartNamingTheMissingWeightsFile()
    {
        using var dir = new TestPaths.TempDir();
        var json = JsonNode.Parse(File.ReadAllText(TestPaths.SharedFile("configs", "train_decoder_config.test.json")))!;
        json["evaluate"]!["weights_dir"] = dir.Path;
        Dalle2Sharp.Tests.Evaluation.MetricWeightFiles.WriteRandom(dir.Path, "vgg");
        var config = ConfigLoader.Parse(json.ToJsonString());
        // No ViT-L-14.pt in the weights folder and its download fails (a mirror that refuses connections, so that
        // the test never fetches the real 890 MB file): a start-up error naming the file and the URL.
        using var env = new Servers.EnvScope(new Dictionary<string, string?>
            { ["DALLE2_WEIGHTS_DIR"] = null, ["DALLE2_WEIGHTS_MIRROR"] = "http://127.0.0.1:9" });
        var e = Assert.Throws<UserInputException>(() => new TrainDecoderLoop(config, _ => { }).Run());
        Assert.Contains(Path.Combine(dir.Path, "ViT-L-14.pt"), e.Message);
        Assert.Contains("http://127.0.0.1:9/ViT-L-14.pt", e.Message);
        Assert.Equal("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            Dalle2Sharp.Clip.ClipWeights.OpenAiModels["ViT-L/14"].Split('/')[^2]);
    }

    /// <summary>
    /// A small CLIP saved under the name of OpenAI's ViT-L/14 file: shape inference makes it a 1-layer,
    /// 64-wide model whose embeddings are 768 wide, as the test config's unet expects. Seeded normal weights.
    /// </summary>
    private static void WriteStandInClip(string path)
    {
        var hp = new Dalle2Sharp.Clip.ClipHyperparameters(EmbedDim: 768, ImageResolution: 32, VisionLayers: 1, VisionWidth: 64, VisionPatchSize: 8,
            ContextLength: 77, VocabSize: 49408, TransformerWidth: 64, TransformerHeads: 1, TransformerLayers: 1);
        using var model = new Dalle2Sharp.Clip.ClipModel(hp);
        var generator = new TorchSharp.torch.Generator(7);
        var sd = new System.Collections.Specialized.OrderedDictionary();
        foreach (var (key, value) in model.state_dict())
            sd[key] = key.Contains("ln_") && key.EndsWith("weight") ? TorchSharp.torch.ones_like(value)
                : TorchSharp.torch.randn(value.shape, generator: generator) * 0.05;
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(path, sd);
    }

    [Fact]
    public void UpstreamTestConfigRunsUnchangedWithCLIPEmbeddingImagesOnTheFly()
    {
        using var dir = new TestPaths.TempDir();
        var weights = Directory.CreateDirectory(dir.File("weights")).FullName;
        WriteStandInClip(Path.Combine(weights, "ViT-L-14.pt"));
        Dalle2Sharp.Tests.Evaluation.MetricWeightFiles.WriteRandom(weights, "vgg");
        var work = Directory.CreateDirectory(dir.File("work")).FullName;
        // The config names its shards test_data/{}.tar, relative to where it runs.
        Directory.CreateSymbolicLink(Path.Combine(work, "test_data"), TestPaths.SharedFile("data", "upstream-test-shards"));
        var r = CliRunner.RunWith(work, new Dictionary<string, string> { ["DALLE2_WEIGHTS_DIR"] = weights },
            "train-decoder", "--config", TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("CLIP: openai ViT-L/14 from", r.Stdout);
        Assert.Matches(@"CLIP ms per batch: \d", r.Stdout);
        Assert.Contains("epoch 0 done", r.Stdout);
        Assert.Contains("FID: ", r.Stdout);
        // CLIP is not part of the decoder's checkpoint (as upstream, which drops it before saving).
        var checkpoint = Dalle2Sharp.Runtime.TorchFiles.LoadStateDict(Path.Combine(work, "latest.pth"));
        var model = (System.Collections.IDictionary)checkpoint["model"]!;
        Assert.DoesNotContain(model.Keys.Cast<string>(), k => k.StartsWith("clip."));
        Assert.Contains("unets.0.init_conv.convs.0.weight", model.Keys.Cast<string>());
    }

    [Fact]
    public void UpstreamTestConfigTrainsOnTheUpstreamShardsWithNpyEmbeddings()
    {
        using var dir = new TestPaths.TempDir();
        // The upstream test config, with its clip block swapped for a folder of .npy image embeddings
        // (7 rows of 768 per shard, keys 0..6 with index_width 1) and its paths pointed at temp folders.
        var emb = Directory.CreateDirectory(dir.File("img_emb")).FullName;
        var random = new Random(1);
        for (int shard = 0; shard < 10; shard++)
        {
            var rows = Enumerable.Range(0, 7 * 768).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            using var f = File.Create(Path.Combine(emb, $"img_emb_{shard}.npy"));
            Npy.Write(f, [7, 768], rows, float16: true);
        }
        var json = JsonNode.Parse(File.ReadAllText(TestPaths.SharedFile("configs", "train_decoder_config.test.json")))!;
        json["decoder"]!.AsObject().Remove("clip");
        json["data"]!["webdataset_base_url"] = Path.Combine(TestPaths.SharedFile("data", "upstream-test-shards"), "{}.tar");
        json["data"]!["img_embeddings_url"] = emb;
        json["tracker"]!["data_path"] = dir.File("run");
        json["tracker"]!["overwrite_data_path"] = false;
        json["tracker"]!["save"]![0]!["save_latest_to"] = dir.File("latest.pth");
        json["evaluate"]!["weights_dir"] = dir.File("weights");
        Dalle2Sharp.Tests.Evaluation.MetricWeightFiles.WriteRandom(dir.File("weights"), "vgg");
        var config = ConfigLoader.Parse(json.ToJsonString());

        var lines = new List<string>();
        new TrainDecoderLoop(config, lines.Add).Run();
        // The evaluate section (FID 64, IS, KID subset 2, LPIPS vgg on 2 samples) runs with (random) weights from weights_dir.
        Assert.Contains(lines, l => l.Contains("FID: ") && l.Contains("IS_mean: ") && l.Contains("KID_mean: ") && l.Contains("LPIPS: "));
        Assert.Contains(lines, l => l.StartsWith("decoder: 1 unet(s), 4,374,678 parameters") && l.Contains("shards train 8 / val 1 / test 1"));
        Assert.Contains(lines, l => l.StartsWith("epoch 0 done") && l.Contains("50 samples"));
        Assert.True(File.Exists(dir.File("latest.pth")));
        Assert.True(File.Exists(dir.File("run/samples/epoch000_test.png")));
    }

    [Theory]
    [InlineData(10)]
    [InlineData(25)]
    public void UpstreamTestConfigSamplesFiniteImagesWithDpmSolverAtAnyStepCount(int steps)
    {
        // T = 10: 10 steps repeated a rounded timestep and 25 exceed T; both once divided by zero (black images).
        using var scope = TorchSharp.torch.NewDisposeScope();
        var json = JsonNode.Parse(File.ReadAllText(TestPaths.SharedFile("configs", "train_decoder_config.test.json")))!;
        json["decoder"]!.AsObject().Remove("clip");
        json["data"]!["img_embeddings_url"] = "unused";
        var config = ConfigLoader.Parse(json.ToJsonString());
        Assert.Equal(10, config.Decoder.Timesteps);
        using var decoder = new Dalle2Sharp.Models.Decoder(config.Decoder);
        Dalle2Sharp.Tests.Models.AnalyticWeights.Apply(decoder, "unets.0.");
        var embed = TorchSharp.torch.randn([1, 768], generator: new TorchSharp.torch.Generator(seed: 2));
        var images = decoder.Sample(embed, options: new Dalle2Sharp.Models.SampleOptions
        {
            Samplers = [new Dalle2Sharp.Diffusion.SamplerSpec("dpmpp", steps)], Generator = new TorchSharp.torch.Generator(seed: 1),
        });
        Assert.True(images.isfinite().all().item<bool>());
        Assert.True(images.std().item<float>() > 0.01, "flat image");
    }
}
