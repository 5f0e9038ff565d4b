using System.Diagnostics;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Bench;

/// <summary>
/// Trains a small decoder (T = 250) on synthetic shapes, then samples the same embeddings from the
/// same initial noise with 250-step ancestral DDPM, 25-step DDIM and 25-step DPM-Solver++(2M), and
/// reports each fast sampler's RMSE to the DDPM images next to the RMSE between DDPM samples of
/// different noise (what "unrelated" looks like), and images/second.
/// </summary>
public static class SamplerQualityBench
{
    public static JsonObject Run(string[] args)
    {
        int trainSeconds = args.Length > 0 ? int.Parse(args[0]) : 150;
        const int size = 32, batch = 16, samples = 16;
        manual_seed(0);
        var config = new DecoderConfig
        {
            Unets = [new UnetConfig { Dim = 32, ImageEmbedDim = SyntheticShapes.EmbedDim, CondDim = 16, DimMults = [1, 2, 4], AttnDimHead = 16, AttnHeads = 4, SelfAttn = new([false, false, true]) }],
            ImageSizes = [size], Timesteps = 250,
        };
        using var decoder = new Decoder(config);
        using var optimizer = optim.AdamW(decoder.parameters(), lr: 1e-3, beta1: 0.9, beta2: 0.99, weight_decay: 0.01);
        var g = new Generator(seed: 0);
        var sw = Stopwatch.StartNew();
        int steps = 0;
        double lossSum = 0;
        var losses = new JsonArray();
        while (sw.Elapsed.TotalSeconds < trainSeconds)
        {
            using var scope = NewDisposeScope();
            var (images, embeds) = SyntheticShapes.Batch(batch, size, g);
            optimizer.zero_grad();
            var loss = decoder.forward(images, embeds, generator: g);
            loss.backward();
            nn.utils.clip_grad_norm_(decoder.parameters(), 0.5);
            optimizer.step();
            lossSum += loss.item<float>();
            if (++steps % 100 == 0) { losses.Add(Math.Round(lossSum / 100, 4)); lossSum = 0; }
            if (steps % 10 == 0) GC.Collect();
        }

        var (targets, testEmbeds) = SyntheticShapes.Batch(samples, size, new Generator(seed: 99));
        var results = new JsonObject();
        var outputs = new Dictionary<string, Tensor>();
        foreach (var (name, spec, seed) in new[]
        {
            ("ddpm_250", new SamplerSpec("ddpm"), 7UL), ("ddpm_250_other_noise", new SamplerSpec("ddpm"), 8UL),
            ("ddim_250", new SamplerSpec("ddim", 250), 7UL), ("ddim_25", new SamplerSpec("ddim", 25), 7UL), ("dpmpp_25", new SamplerSpec("dpmpp", 25), 7UL),
        })
        {
            var timer = Stopwatch.StartNew();
            outputs[name] = decoder.Sample(testEmbeds, options: new SampleOptions { Samplers = [spec], Generator = new Generator(seed: seed) });
            double seconds = timer.Elapsed.TotalSeconds;
            results[name] = new JsonObject
            {
                ["images_per_second"] = Math.Round(samples / seconds, 3),
                ["rmse_to_target_image"] = Rmse(outputs[name], targets),
            };
            GC.Collect();
        }
        foreach (var name in new[] { "ddpm_250_other_noise", "ddim_250", "ddim_25", "dpmpp_25" })
            results[name]!["rmse_to_ddpm_250_same_noise"] = Rmse(outputs[name], outputs["ddpm_250"]);
        results["ddim_25"]!["rmse_to_ddim_250_same_noise"] = Rmse(outputs["ddim_25"], outputs["ddim_250"]);
        results["dpmpp_25"]!["rmse_to_ddim_250_same_noise"] = Rmse(outputs["dpmpp_25"], outputs["ddim_250"]);

        return new JsonObject
        {
            ["benchmark"] = "samplers",
            ["decoder"] = "dim 32, dim_mults 1,2,4, 32 px, T 250, cosine, learned variance; trained on synthetic shapes",
            ["train_steps"] = steps,
            ["train_seconds"] = Math.Round(sw.Elapsed.TotalSeconds),
            ["train_loss_per_100_steps"] = losses,
            ["samples"] = samples,
            ["samplers"] = results,
            ["note"] = "RMSE over pixels in [0,1]; ddpm_250_other_noise shows the distance between unrelated samples of the same embeddings",
        };
    }

    private static double Rmse(Tensor a, Tensor b) => Math.Round((a - b).square().mean().sqrt().item<float>(), 4);
}
