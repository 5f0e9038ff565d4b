using System.ComponentModel;
using System.Text.RegularExpressions;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Models;
using Dalle2Sharp.Training;
using Spectre.Console.Cli;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Cli.Commands;

public sealed class SampleSettings : CommandSettings
{
    [CommandOption("--checkpoint <FILE>"), Description("Checkpoint (ours or DALLE2-pytorch's .pth: checkpoint, model file or plain state dict).")]
    public string Checkpoint { get; set; } = "";

    [CommandOption("--image-embeddings <FILE>"), Description(".npy of image embeddings [N, D]: one image per row.")]
    public string ImageEmbeddings { get; set; } = "";

    [CommandOption("--out <DIR>"), Description("Folder for the PNGs (one per row, and grid.png).")]
    public string Out { get; set; } = "";

    [CommandOption("--config <FILE>"), Description("Training config, for files that do not carry one (plain state dicts).")]
    public string? Config { get; set; }

    [CommandOption("--sampler <KIND>"), Description("ddpm, ddim or dpmpp (default: the config's).")]
    public string? Sampler { get; set; }

    [CommandOption("--steps <N>"), Description("Sampling steps for ddim / dpmpp.")]
    public int? Steps { get; set; }

    [CommandOption("--cond-scale <S>"), Description("Classifier-free guidance scale (default: train.cond_scale).")]
    public double? CondScale { get; set; }

    [CommandOption("--seed <N>"), Description("Seed of the sampling noise.")]
    public long Seed { get; set; }

    [CommandOption("--unets <A-B>"), Description("Range of unets to run, e.g. 1-2 (default: all).")]
    public string? Unets { get; set; }

    public override Spectre.Console.ValidationResult Validate()
    {
        if (string.IsNullOrEmpty(Checkpoint) || string.IsNullOrEmpty(ImageEmbeddings) || string.IsNullOrEmpty(Out))
            return Spectre.Console.ValidationResult.Error("--checkpoint, --image-embeddings and --out are required");
        if (Sampler is not null && !SamplerSpec.Kinds.Contains(Sampler))
            return Spectre.Console.ValidationResult.Error($"--sampler \"{Sampler}\" is not one of {string.Join(", ", SamplerSpec.Kinds)}");
        if (Unets is not null && !Regex.IsMatch(Unets, @"^\d+(-\d+)?$")) return Spectre.Console.ValidationResult.Error("--unets must look like 1 or 1-2");
        return Spectre.Console.ValidationResult.Success();
    }
}

/// <summary>`dalle2 sample`: images from image embeddings with a trained decoder (EMA weights when the file has them).</summary>
public sealed class SampleCommand : Command<SampleSettings>
{
    public override int Execute(CommandContext context, SampleSettings s, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            if (!File.Exists(s.Checkpoint)) throw new UserInputException($"--checkpoint {s.Checkpoint} does not exist");
            System.Collections.Hashtable root;
            try
            {
                using var file = File.OpenRead(s.Checkpoint);
                root = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(file, leaveOpen: true, skipTensorRead: true);
            }
            catch (Exception e) when (e is not IOException) { throw new UserInputException($"{s.Checkpoint} is not a readable PyTorch checkpoint: {e.Message}", e); }
            TrainDecoderConfig config = s.Config is not null ? ConfigLoader.LoadFile(s.Config)
                : root["config"] is { } stored ? ConfigLoader.Parse(PickleValues.ToJson(stored)!.ToJsonString(), $"{s.Checkpoint} (stored config)")
                : throw new UserInputException($"{s.Checkpoint} carries no config: give --config");

            using var decoder = new Decoder(config.Decoder);
            using var trainer = new DecoderTrainer(decoder, config.Train);
            var loaded = Checkpoint.Load(s.Checkpoint, trainer, onlyModel: !root.ContainsKey("ema"));
            bool useEma = loaded.ContainsKey("ema") && config.Train.UseEma;

            var rows = Npy.ReadFile(s.ImageEmbeddings);
            if (rows.Shape.Length != 2) throw new UserInputException($"{s.ImageEmbeddings} must be [N, D], is [{string.Join(", ", rows.Shape)}]");
            var embeds = tensor(rows.Data).reshape(rows.Shape[0], rows.Shape[1]);
            int first = 1, last = decoder.NumUnets;
            if (s.Unets is { } range)
            {
                var parts = range.Split('-').Select(int.Parse).ToArray();
                (first, last) = (parts[0], parts.Length > 1 ? parts[1] : parts[0]);
            }
            var samplers = Enumerable.Range(1, decoder.NumUnets).Select(u =>
            {
                var d = decoder.DefaultSampler(u);
                return new SamplerSpec(s.Sampler ?? d.Kind, s.Steps ?? d.Steps, d.Eta);
            }).ToArray();
            var scales = s.CondScale is { } cs ? Enumerable.Repeat(cs, decoder.NumUnets).ToArray() : config.Train.CondScale.Expand(decoder.NumUnets).ToArray();
            var images = trainer.Sample(embeds, null, new SampleOptions
            {
                Samplers = samplers, CondScale = scales, StartAtUnet = first, StopAtUnet = last, Generator = new Generator((ulong)s.Seed),
            }, useEma);

            Directory.CreateDirectory(s.Out);
            var pixels = (images * 255).round().clamp(0, 255).to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous();
            for (int i = 0; i < images.shape[0]; i++)
            {
                var img = pixels[i];
                var png = ImageDecoder.EncodePng(new RgbImage((int)img.shape[1], (int)img.shape[0], img.data<byte>().ToArray()));
                File.WriteAllBytes(Path.Combine(s.Out, $"{i:D4}.png"), png);
            }
            var grid = cat(images.unbind(0).ToArray(), 2);
            var gridPixels = (grid * 255).round().clamp(0, 255).to(ScalarType.Byte).permute(1, 2, 0).contiguous();
            File.WriteAllBytes(Path.Combine(s.Out, "grid.png"), ImageDecoder.EncodePng(new RgbImage((int)gridPixels.shape[1], (int)gridPixels.shape[0], gridPixels.data<byte>().ToArray())));
            Console.WriteLine($"{images.shape[0]} image(s) of {images.shape[2]} px written to {s.Out} ({(useEma ? "EMA" : "online")} weights, {string.Join(", ", samplers.Skip(first - 1).Take(last - first + 1).Select(p => p.Kind + (p.Steps is { } st && p.Kind != "ddpm" ? $" {st} steps" : "")))})");
        });
}
