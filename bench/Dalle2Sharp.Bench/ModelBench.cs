using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Bench;

/// <summary>
/// The upstream test-config Unet at 64 px, batch 4: one training step (forward, backward, AdamW),
/// one sampling step (a guided unet evaluation), and whole 25-step DDIM / DPM-Solver++ samples.
/// </summary>
public static class ModelBench
{
    public static JsonObject Run(string[] args)
    {
        int runs = args.Length > 0 ? int.Parse(args[0]) : 10;
        const int batch = 4;
        manual_seed(0);
        using var decoder = new Decoder(BenchModels.TestConfigDecoder());
        var g = new Generator(seed: 0);
        var images = rand([batch, 3, 64, 64], generator: g);
        var embeds = randn([batch, 768], generator: g);
        using var optimizer = optim.AdamW(decoder.parameters(), lr: 1e-4, beta1: 0.9, beta2: 0.99, weight_decay: 0.01);
        double rssStart = Measure.RssMb();

        var train = Measure.Time(() =>
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            decoder.forward(images, embeds, generator: g).backward();
            nn.utils.clip_grad_norm_(decoder.parameters(), 0.5);
            optimizer.step();
            GC.Collect();
        }, runs);
        double rssAfterTrain = Measure.RssMb();

        decoder.eval();
        var unet = decoder.Unet(1);
        var x = randn([batch, 3, 64, 64], generator: g);
        var t = full(batch, 500, dtype: int64);
        var cond = new UnetConditioning(ImageEmbed: embeds);
        var sampleStep = Measure.Time(() =>
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            unet.ForwardWithCondScale(x, t, cond, 1.0);
        }, runs);
        var guidedStep = Measure.Time(() =>
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            unet.ForwardWithCondScale(x, t, cond, 3.0);
        }, runs);
        double rssAfterSteps = Measure.RssMb();

        var samplers = new JsonObject();
        foreach (var kind in new[] { "ddim", "dpmpp" })
        {
            var timing = Measure.Time(() =>
            {
                using var scope = NewDisposeScope();
                decoder.Sample(embeds, options: new SampleOptions { Samplers = [new SamplerSpec(kind, 25)], Generator = new Generator(seed: 1) });
                GC.Collect();
            }, Math.Max(2, runs / 5), warmup: 1);
            samplers[kind] = new JsonObject { ["steps"] = 25, ["batch_ms"] = Math.Round(timing.Median, 1), ["images_per_second"] = Math.Round(batch * 1000 / timing.Median, 3) };
        }
        GC.Collect();

        return new JsonObject
        {
            ["benchmark"] = "model",
            ["unet"] = "upstream test config (dim 16, dim_mults 1,2,4,8, self_attn F,T,T,T), decoder-cast, 4.37M parameters",
            ["batch"] = batch,
            ["image_size"] = 64,
            ["runs"] = runs,
            ["train_step_ms"] = new JsonObject { ["median"] = Math.Round(train.Median, 1), ["min"] = Math.Round(train.Min, 1) },
            ["sampling_step_ms"] = new JsonObject { ["median"] = Math.Round(sampleStep.Median, 1), ["min"] = Math.Round(sampleStep.Min, 1) },
            ["guided_sampling_step_ms"] = new JsonObject { ["median"] = Math.Round(guidedStep.Median, 1), ["cond_scale"] = 3.0 },
            ["samples_25_steps"] = samplers,
            ["rss_mb"] = new JsonObject
            {
                ["start"] = Math.Round(rssStart), ["after_train_steps"] = Math.Round(rssAfterTrain),
                ["after_sampling_steps"] = Math.Round(rssAfterSteps), ["end"] = Math.Round(Measure.RssMb()),
            },
            ["upstream_reference"] = "PyTorch 1.13 + OpenBLAS, 2 threads, same machines: train step batch 4 ≈ 700 ms, DDPM step batch 4 ≈ 300 ms",
        };
    }
}
