using System.ComponentModel;
using System.Text.RegularExpressions;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Evaluation;
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

    [CommandOption("--unets <A-B>"), Description("Range of unets to run, e.g. 1-2 (default: all). Starting after unet 1 needs --lowres-images.")]
    public string? Unets { get; set; }

    [CommandOption("--lowres-images <PATHS>"), Description("Images to upsample when --unets starts after unet 1: " +
        "a folder (files in name order) or comma-separated files, one per embedding row.")]
    public string? LowresImages { get; set; }

    [CommandOption("--text-encodings <FILE>"), Description(".npy of per-token text encodings [N, tokens, dim], for decoders conditioned on text.")]
    public string? TextEncodings { get; set; }

    public override Spectre.Console.ValidationResult Validate()
    {
        if (string.IsNullOrEmpty(Checkpoint) || string.IsNullOrEmpty(ImageEmbeddings) || string.IsNullOrEmpty(Out))
            return Spectre.Console.ValidationResult.Error("--checkpoint, --image-embeddings and --out are required");
        if (Sampler is not null && !SamplerSpec.Kinds.Contains(Sampler))
            return Spectre.Console.ValidationResult.Error($"--sampler \"{Sampler}\" is not one of {string.Join(", ", SamplerSpec.Kinds)}");
        if (Unets is not null && !Regex.IsMatch(Unets, @"^[1-9]\d{0,2}(-[1-9]\d{0,2})?$"))
            return Spectre.Console.ValidationResult.Error("--unets must look like 1 or 1-2 (unets are numbered from 1)");
        if (Steps is < 1) return Spectre.Console.ValidationResult.Error($"--steps must be at least 1, got {Steps}");
        return Spectre.Console.ValidationResult.Success();
    }
}

/// <summary>A decoder checkpoint opened for sampling: its config (stored, or --config), the decoder with its weights, EMA when present.</summary>
public static class DecoderCheckpoint
{
    public static (TrainDecoderConfig Config, Decoder Decoder, DecoderTrainer Trainer, System.Collections.Hashtable Loaded, bool UseEma) Open(
        string checkpoint, string? configFile)
    {
        if (!File.Exists(checkpoint)) throw new UserInputException($"--checkpoint {checkpoint} does not exist");
        System.Collections.Hashtable root;
        try
        {
            using var file = File.OpenRead(checkpoint);
            root = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(file, leaveOpen: true, skipTensorRead: true);
        }
        catch (Exception e) when (e is not IOException)
        {
            throw new UserInputException($"{checkpoint} is not a readable PyTorch checkpoint: {e.Message}", e);
        }
        TrainDecoderConfig config = configFile is not null ? ConfigLoader.LoadFile(configFile)
            : root["config"] is { } stored ? ConfigLoader.Parse(PickleValues.ToJson(stored)!.ToJsonString(), $"{checkpoint} (stored config)")
            : throw new UserInputException($"{checkpoint} carries no config: give --config");
        var decoder = new Decoder(config.Decoder);
        var trainer = new DecoderTrainer(decoder, config.Train);
        var loaded = Checkpoint.Load(checkpoint, trainer, onlyModel: !root.ContainsKey("ema"));
        return (config, decoder, trainer, loaded, loaded.ContainsKey("ema") && config.Train.UseEma);
    }
}

/// <summary>`dalle2 sample`: images from image embeddings with a trained decoder (EMA weights when the file has them).</summary>
public sealed class SampleCommand : Command<SampleSettings>
{
    public override int Execute(CommandContext context, SampleSettings s, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var (config, decoder, trainer, loaded, useEma) = DecoderCheckpoint.Open(s.Checkpoint, s.Config);
            using var _decoder = decoder;
            using var _trainer = trainer;

            var rows = Npy.ReadFile(s.ImageEmbeddings);
            if (rows.Shape.Length != 2) throw new UserInputException($"{s.ImageEmbeddings} must be [N, D], is [{string.Join(", ", rows.Shape)}]");
            long expectedWidth = config.Decoder.Unets[0].ImageEmbedDim ?? rows.Shape[1];
            if (rows.Shape[1] != expectedWidth)
                throw new UserInputException(
                    $"{s.ImageEmbeddings}: embeddings are {rows.Shape[1]} wide, the decoder's image_embed_dim is {expectedWidth}");
            var embeds = tensor(rows.Data).reshape(rows.Shape[0], rows.Shape[1]);
            Tensor? text = null;
            if (s.TextEncodings is { } textFile)
            {
                if (!decoder.TextConditioned) throw new UserInputException("--text-encodings: this decoder is not conditioned on text");
                var t = Npy.ReadFile(textFile);
                if (t.Shape.Length != 3 || t.Shape[0] != rows.Shape[0])
                    throw new UserInputException(
                        $"{textFile} must be [{rows.Shape[0]}, tokens, dim] (one row per embedding), is [{string.Join(", ", t.Shape)}]");
                text = tensor(t.Data).reshape(t.Shape);
            }
            else if (decoder.TextConditioned)
                throw new UserInputException("this decoder is conditioned on text: give --text-encodings FILE.npy ([N, tokens, dim])");
            // Checkpoints of masked runs (upstream's) hold no weights for the unets they did not train:
            // by default the range is the unets the file has, and asking for one it lacks is an error.
            var weights = loaded["model"] as System.Collections.IDictionary ?? loaded;
            var present = Enumerable.Range(0, decoder.NumUnets)
                .Select(i => weights.Keys.OfType<string>().Any(k => k.StartsWith($"unets.{i}.", StringComparison.Ordinal))).ToArray();
            if (!present.Any(p => p)) throw new UserInputException($"{s.Checkpoint} holds no unet weights");
            int first = Array.IndexOf(present, true) + 1, last = Array.LastIndexOf(present, true) + 1;
            if (s.Unets is { } range)
            {
                var parts = range.Split('-').Select(int.Parse).ToArray();
                (first, last) = (parts[0], parts.Length > 1 ? parts[1] : parts[0]);
                if (first > last || last > decoder.NumUnets)
                    throw new UserInputException($"--unets {range}: this decoder has unets 1-{decoder.NumUnets}");
            }
            for (int u = first; u <= last; u++)
                if (!present[u - 1])
                    throw new UserInputException($"{s.Checkpoint} has no weights for unet {u} (not trained in that run: unet_training_mask); " +
                                                 "choose --unets within the trained ones");
            Tensor? start = null;
            if (first > 1)
            {
                if (s.LowresImages is null)
                    throw new UserInputException((s.Unets is null ? $"sampling starts at unet {first} (the first this checkpoint has weights for)"
                                                                  : $"--unets {s.Unets} starts at unet {first}") +
                                                 ": give the images to upsample with --lowres-images");
                start = LoadImages(s.LowresImages, rows.Shape[0], decoder.ImageSizes[first - 2]);
            }
            else if (s.LowresImages is not null) throw new UserInputException("--lowres-images is only used when --unets starts after unet 1");
            var (samplers, scales) = SamplingChoices.Build(decoder, config, s.Sampler, s.Steps, s.CondScale, first, last);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var images = trainer.Sample(embeds, text, new SampleOptions
            {
                Samplers = samplers, CondScale = scales, StartAtUnet = first, StopAtUnet = last, StartImage = start,
                Generator = new Generator((ulong)s.Seed),
            }, useEma);
            double seconds = clock.Elapsed.TotalSeconds;

            Directory.CreateDirectory(s.Out);
            var pixels = DecoderEvaluator.ToUint8(images).permute(0, 2, 3, 1).contiguous();
            for (int i = 0; i < images.shape[0]; i++)
            {
                var img = pixels[i];
                var png = ImageDecoder.EncodePng(new RgbImage((int)img.shape[1], (int)img.shape[0], img.data<byte>().ToArray()));
                File.WriteAllBytes(Path.Combine(s.Out, $"{i:D4}.png"), png);
            }
            var grid = cat(images.unbind(0).ToArray(), 2);
            var gridPixels = DecoderEvaluator.ToUint8(grid).permute(1, 2, 0).contiguous();
            File.WriteAllBytes(Path.Combine(s.Out, "grid.png"),
                ImageDecoder.EncodePng(new RgbImage((int)gridPixels.shape[1], (int)gridPixels.shape[0], gridPixels.data<byte>().ToArray())));
            Console.WriteLine($"{images.shape[0]} image(s) of {images.shape[2]} px written to {s.Out} ({(useEma ? "EMA" : "online")} weights, " +
                              string.Join(", ", samplers.Skip(first - 1).Take(last - first + 1)
                                  .Select(p => p.Kind + (p.Steps is { } st && p.Kind != "ddpm" ? $" {st} steps" : ""))) + "; " +
                              $"{images.shape[0] / seconds:F2} images/s)");
        });

    /// <summary>One image per embedding row from a folder (name order) or a comma-separated list, as [N, 3, size, size] in [0, 1].</summary>
    private static Tensor LoadImages(string spec, long count, int size)
    {
        var files = Directory.Exists(spec)
            ? Directory.GetFiles(spec).Where(f => ImageDecoder.Extensions.Contains(Path.GetExtension(f).TrimStart('.').ToLowerInvariant()))
                .Order(StringComparer.Ordinal).ToArray()
            : spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (files.Length != count) throw new UserInputException($"--lowres-images: {files.Length} image(s) for {count} embedding row(s)");
        var images = files.Select(file =>
        {
            if (!File.Exists(file)) throw new UserInputException($"--lowres-images: {file} does not exist");
            RgbImage rgb;
            try { rgb = ImageDecoder.Decode(File.ReadAllBytes(file)); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new UserInputException($"--lowres-images: {file} is not a readable image: {e.Message}", e);
            }
            var pixels = tensor(rgb.Pixels).reshape(rgb.Height, rgb.Width, 3).permute(2, 0, 1).to(float32) / 255;
            return nn.functional.interpolate(pixels.unsqueeze(0), size: [size, size], mode: InterpolationMode.Nearest).squeeze(0);
        }).ToArray();
        return stack(images);
    }
}

/// <summary>The sampler and guidance scale per unet from the command line, else the config's: shared by sample and variations.</summary>
internal static class SamplingChoices
{
    public static (SamplerSpec[] Samplers, double[] CondScales) Build(Decoder decoder, TrainDecoderConfig config, string? sampler, int? steps,
                                                                     double? condScale, int firstUnet, int lastUnet)
    {
        var samplers = Enumerable.Range(1, decoder.NumUnets).Select(u =>
        {
            var d = decoder.DefaultSampler(u);
            var kind = sampler ?? d.Kind;
            int? n = steps ?? d.Steps;
            if (n is { } count && kind != "ddpm" && count > config.Decoder.Timesteps && u >= firstUnet && u <= lastUnet)
                throw new UserInputException($"--steps {count}: {kind} takes at most timesteps ({config.Decoder.Timesteps}) steps");
            return new SamplerSpec(kind, n, d.Eta);
        }).ToArray();
        var scales = condScale is { } cs
            ? Enumerable.Repeat(cs, decoder.NumUnets).ToArray()
            : config.Train.CondScale.Expand(decoder.NumUnets).ToArray();
        return (samplers, scales);
    }
}
