using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Training;

namespace Dalle2Sharp.Tests.Training;

public class UpstreamTestConfigTests
{
    [Fact]
    public void UpstreamTestConfigWithClipIsRefusedNamingTheWeights()
    {
        var config = ConfigLoader.LoadFile(TestPaths.SharedFile("configs", "train_decoder_config.test.json"));
        var e = Assert.Throws<UserInputException>(() => new TrainDecoderLoop(config, _ => { }).Run());
        Assert.Contains("CLIP weights (openai ViT-L/14) are not available yet", e.Message);
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
