using System.ComponentModel;
using Dalle2Sharp.Clip;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Diffusion;
using Dalle2Sharp.Evaluation;
using Dalle2Sharp.Models;
using Dalle2Sharp.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Dalle2Sharp.Cli.Commands;

public sealed class VariationsSettings : CommandSettings
{
    [CommandOption("--checkpoint <FILE>"), Description("Decoder checkpoint (ours or DALLE2-pytorch's).")]
    public string Checkpoint { get; set; } = "";

    [CommandOption("--images <FILES>"), Description("Images to vary (repeat the option or separate with commas).")]
    public string[] Images { get; set; } = [];

    [CommandOption("-n|--number <N>"), Description("Variations per image (-n: Spectre.Console takes no one-letter long options, so not --n).")]
    public int N { get; set; } = 4;

    [CommandOption("--out <DIR>"), Description("Folder for the variations and grid.png (each row: the original, then its variations).")]
    public string Out { get; set; } = "";

    [CommandOption("--config <FILE>"), Description("Training config, for checkpoints that carry none.")]
    public string? Config { get; set; }

    [CommandOption("--clip <MODEL>"), Description("CLIP (OpenAI name or weights file) when the config has no decoder.clip; it must be the one " +
        "the embeddings came from.")]
    public string? Clip { get; set; }

    [CommandOption("--weights-dir <DIR>"), Description("Folder of CLIP weight files (default: $DALLE2_WEIGHTS_DIR, ~/.cache/dalle2sharp/weights).")]
    public string? WeightsDir { get; set; }

    [CommandOption("--captions <TEXT>"), Description("For decoders conditioned on text: one caption per image, separated by |.")]
    public string? Captions { get; set; }

    [CommandOption("--sampler <KIND>"), Description("ddpm, ddim or dpmpp (default: the config's).")]
    public string? Sampler { get; set; }

    [CommandOption("--steps <N>"), Description("Sampling steps for ddim / dpmpp.")]
    public int? Steps { get; set; }

    [CommandOption("--cond-scale <S>"), Description("Classifier-free guidance scale (default: train.cond_scale).")]
    public double? CondScale { get; set; }

    [CommandOption("--seed <N>")]
    public long Seed { get; set; }

    public override Spectre.Console.ValidationResult Validate() =>
        string.IsNullOrEmpty(Checkpoint) || Images.Length == 0 || string.IsNullOrEmpty(Out)
            ? Spectre.Console.ValidationResult.Error("--checkpoint, --images and --out are required")
        : N < 1 ? Spectre.Console.ValidationResult.Error("--n must be at least 1")
        : Steps is < 1 ? Spectre.Console.ValidationResult.Error($"--steps must be at least 1, got {Steps}")
        : Sampler is not null && !SamplerSpec.Kinds.Contains(Sampler)
            ? Spectre.Console.ValidationResult.Error($"--sampler {Sampler} is not one of {string.Join(", ", SamplerSpec.Kinds)}")
        : Spectre.Console.ValidationResult.Success();
}

/// <summary>
/// `dalle2 variations`: what DALL-E 2's decoder is for — each image embedded with CLIP (the checkpoint
/// config's decoder.clip, or --clip), then decoded N times with different noise.
/// </summary>
public sealed class VariationsCommand : Command<VariationsSettings>
{
    public override int Execute(CommandContext context, VariationsSettings s, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var (config, decoder, trainer, _, useEma) = DecoderCheckpoint.Open(s.Checkpoint, s.Config);
            using var _decoder = decoder;
            using var _trainer = trainer;
            var clipConfig = s.Clip is not null ? new ClipConfig { Model = s.Clip } : config.Decoder.Clip
                ?? throw new UserInputException("the checkpoint's config has no decoder.clip: give --clip (the CLIP its image embeddings came from)");
            var files = s.Images.SelectMany(i => i.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            var weightsDir = s.WeightsDir ?? new MetricWeights(config.Evaluate).Folder;
            using var stage = ClipStage.Start(new DecoderConfig { Clip = clipConfig, Unets = config.Decoder.Unets }, weightsDir, CPU,
                Console.WriteLine);
            var clip = stage.Embedder;
            long width = config.Decoder.Unets[0].ImageEmbedDim ?? clip.EmbedDim;
            if (width != clip.EmbedDim)
                throw new UserInputException($"CLIP's embeddings are {clip.EmbedDim} wide, the decoder's image_embed_dim is {width}: not the " +
                    $"CLIP it was trained with");

            // CLIP's own preprocessing (bicubic shorter side, centre crop), as `dalle2 embed` uses.
            var transforms = new ImageTransforms(clip.Preprocessing());
            var originals = stack(files.Select(f =>
            {
                if (!File.Exists(f)) throw new UserInputException($"--images: {f} does not exist");
                try { return transforms.Apply(File.ReadAllBytes(f)); }
                catch (Exception e) when (e is InvalidDataException or ArgumentException or IOException)
                {
                    throw new UserInputException($"--images: {f} is not a readable image: {e.Message}", e);
                }
            }).ToArray());
            var embeds = clip.EmbedImage(originals).repeat_interleave(s.N, 0);
            Tensor? text = null;
            if (decoder.TextConditioned)
            {
                var captions = s.Captions?.Split('|') ?? throw new UserInputException("this decoder is conditioned on text: give --captions (one " +
                    "per image, | between)");
                if (captions.Length != files.Count) throw new UserInputException($"--captions: {captions.Length} caption(s) for {files.Count} " +
                    $"image(s)");
                using var tokens = ClipTokenizer.Shared.Tokenize(captions);
                text = clip.EmbedText(tokens).Encodings.repeat_interleave(s.N, 0);
            }
            var (samplers, scales) = SamplingChoices.Build(decoder, config, s.Sampler, s.Steps, s.CondScale, 1, decoder.NumUnets);
            var images = trainer.Sample(embeds, text, new SampleOptions { Samplers = samplers, CondScale = scales,
                Generator = new Generator((ulong)s.Seed) },
                useEma);

            Directory.CreateDirectory(s.Out);
            long size = images.shape[^1];
            var resized = Models.ResizeRight.Resize(originals, (int)size).clamp(0, 1);
            var rows = new List<Tensor>();
            for (int i = 0; i < files.Count; i++)
            {
                var row = new List<Tensor> { resized[i] };
                for (int j = 0; j < s.N; j++)
                {
                    var img = images[i * s.N + j];
                    Save(Path.Combine(s.Out, $"{i:D3}_{j:D2}.png"), img);
                    row.Add(img);
                }
                rows.Add(cat(row.ToArray(), 2));
            }
            Save(Path.Combine(s.Out, "grid.png"), cat(rows.ToArray(), 1));
            Console.WriteLine($"{files.Count} image(s) × {s.N} variation(s) of {size} px written to {s.Out} (grid.png: each row the original, " +
                $"then its variations)");
        });

    private static void Save(string path, Tensor image)
    {
        var pixels = DecoderEvaluator.ToUint8(image).permute(1, 2, 0).contiguous();
        var png = ImageDecoder.EncodePng(new RgbImage((int)pixels.shape[1], (int)pixels.shape[0], pixels.data<byte>().ToArray()));
        Runtime.AtomicFile.Write(path, st => st.Write(png));
    }
}
