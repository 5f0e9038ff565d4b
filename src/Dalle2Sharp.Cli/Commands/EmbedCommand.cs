using System.ComponentModel;
using Dalle2Sharp.Clip;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli.Commands;

public sealed class EmbedSettings : CommandSettings
{
    [CommandOption("--config <FILE>"), Description("Training config: its shards (data), CLIP (decoder.clip) and weights folder.")]
    public string? Config { get; set; }

    [CommandOption("--shards <URL>"), Description("Shard URL with {} for the number, or a brace range (instead of --config).")]
    public string? Shards { get; set; }

    [CommandOption("--start <N>"), Description("First shard (with --shards).")]
    public long Start { get; set; }

    [CommandOption("--end <N>"), Description("Last shard, inclusive (with --shards).")]
    public long? End { get; set; }

    [CommandOption("--shard-width <N>"), Description("Zero-padding of shard numbers (with --shards; default 6).")]
    public int? ShardWidth { get; set; }

    [CommandOption("--index-width <N>"), Description("Digits at the end of a key that give its row (with --shards; default 4).")]
    public int? IndexWidth { get; set; }

    [CommandOption("--clip <MODEL>"), Description("OpenAI CLIP name (ViT-L/14 …) or a weights file (default: the config's decoder.clip, else " +
        "ViT-L/14).")]
    public string? Clip { get; set; }

    [CommandOption("--weights-dir <DIR>"), Description("Folder of CLIP weight files (default: the config's evaluate.weights_dir, " +
        "$DALLE2_WEIGHTS_DIR, ~/.cache/dalle2sharp/weights).")]
    public string? WeightsDir { get; set; }

    [CommandOption("--out <DIR>"), Description("Output folder: img_emb/, text_emb/, text_encodings/.")]
    public string Out { get; set; } = "";

    [CommandOption("--text"), Description("Also write CLIP text embeddings of the captions (text_emb/).")]
    public bool Text { get; set; }

    [CommandOption("--text-encodings"), Description("Also write per-token text encodings (text_encodings/; give it as data.text_embeddings_url).")]
    public bool TextEncodings { get; set; }

    [CommandOption("--batch-size <N>")]
    public int BatchSize { get; set; } = 64;

    [CommandOption("--workers <N>"), Description("Shards decoded at once (default: data.num_workers, else 2).")]
    public int? Workers { get; set; }

    [CommandOption("--device <DEVICE>"), Description("cpu or cuda[:N] (default: the config's train.device, else cpu).")]
    public string? Device { get; set; }

    public override Spectre.Console.ValidationResult Validate() =>
        string.IsNullOrEmpty(Out) ? Spectre.Console.ValidationResult.Error("--out DIR is required")
        : (Config is null) == (Shards is null) ? Spectre.Console.ValidationResult.Error("give --config FILE or --shards URL (one of them)")
        : Shards is not null && Shards.Contains("{}") && End is null ? Spectre.Console.ValidationResult.Error("--shards with {} needs --end")
        : BatchSize <= 0 ? Spectre.Console.ValidationResult.Error("--batch-size must be at least 1")
        : Spectre.Console.ValidationResult.Success();
}

/// <summary>`dalle2 embed`: CLIP image (and text) embeddings of a webdataset, in the layout training reads.</summary>
public sealed class EmbedCommand : Command<EmbedSettings>
{
    public override int Execute(CommandContext context, EmbedSettings s, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var config = s.Config is null ? null : ConfigLoader.LoadFile(s.Config);
            var data = config?.Data;
            var shards = data is not null
                ? ShardSpec.Urls(data.WebdatasetBaseUrl, data.StartShard, data.EndShard, data.ShardWidth)
                : ShardSpec.Urls(s.Shards!, s.Start, s.End ?? 0, s.ShardWidth ?? 6);
            var clipConfig = config?.Decoder.Clip ?? new ClipConfig();
            if (s.Clip is not null) clipConfig = new ClipConfig { Make = File.Exists(s.Clip) ? "openai" : clipConfig.Make, Model = s.Clip };
            var weightsDir = s.WeightsDir ?? new Evaluation.MetricWeights(config?.Evaluate ?? new EvaluateConfig()).Folder;
            var device = Runtime.Devices.Resolve(s.Device ?? config?.Train.Device ?? "cpu");
            var decoder = new DecoderConfig { Clip = clipConfig, Unets = [new UnetConfig { CondOnTextEncodings = s.TextEncodings }] };
            using var stage = ClipStage.Start(decoder, weightsDir, device, Console.WriteLine);
            var issues = new DataIssues(w => Console.Error.WriteLine($"warning: {w}"));
            var options = new EmbedOptions
            {
                Shards = shards, OutFolder = s.Out, ShardWidth = data?.ShardWidth ?? s.ShardWidth ?? 6, IndexWidth = data?.IndexWidth
                    ?? s.IndexWidth ?? 4,
                Text = s.Text, TextEncodings = s.TextEncodings, BatchSize = s.BatchSize, Workers = s.Workers ?? data?.NumWorkers ?? 2,
                MaxImagePixels = data?.MaxImagePixels ?? DataConfig.DefaultMaxImagePixels, Timeouts = data?.Timeouts ?? Runtime.IoTimeouts.Default,
            };
            var summary = Interruptible.Run(cancellationToken, cancel =>
            {
                var result = ShardEmbedding.Run(stage.Embedder, options, issues, Console.WriteLine, cancel);
                Console.WriteLine($"embedded {result.Images} images from {result.ShardsDone} shard(s) in {result.Seconds:F0} s " +
                                  $"({result.Images / Math.Max(result.Seconds, 1e-9):F1} images/s); {result.ShardsSkipped} shard(s) already done; " +
                                  $"{issues.Total} data issue(s)");
                return !cancel.IsCancellationRequested;
            });
            return summary;
        });
}
