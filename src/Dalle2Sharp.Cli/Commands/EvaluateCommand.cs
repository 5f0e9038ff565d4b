using System.ComponentModel;
using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Evaluation;
using Dalle2Sharp.Models;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Training;
using Spectre.Console.Cli;
using TorchSharp;

namespace Dalle2Sharp.Cli.Commands;

public sealed class EvaluateSettings : CommandSettings
{
    [CommandOption("--checkpoint <FILE>"), Description("Checkpoint to evaluate (EMA weights when it has them).")]
    public string Checkpoint { get; set; } = "";

    [CommandOption("-c|--config <FILE>"), Description("Training config: its data (validation split) and evaluate sections are used.")]
    public string Config { get; set; } = "";

    public override Spectre.Console.ValidationResult Validate() =>
        string.IsNullOrEmpty(Checkpoint) || string.IsNullOrEmpty(Config)
            ? Spectre.Console.ValidationResult.Error("--checkpoint FILE and --config FILE are required")
            : Spectre.Console.ValidationResult.Success();
}

/// <summary>`dalle2 evaluate`: the training loop's evaluation phase, outside training; prints the metrics as JSON.</summary>
public sealed class EvaluateCommand : Command<EvaluateSettings>
{
    public override int Execute(CommandContext context, EvaluateSettings s, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var config = ConfigLoader.LoadFile(s.Config);
            if (!File.Exists(s.Checkpoint)) throw new UserInputException($"--checkpoint {s.Checkpoint} does not exist");
            var device = Devices.Resolve(config.Train.Device);
            var weights = new MetricWeights(config.Evaluate);
            weights.EnsureAvailable(config.Evaluate, Console.Error.WriteLine);
            using var decoder = new Decoder(config.Decoder);
            decoder.to(device);
            using var trainer = new DecoderTrainer(decoder, config.Train);
            var root = Checkpoint.Load(s.Checkpoint, trainer);
            if (!root.ContainsKey("ema") && trainer.Ema is not null)
                throw new UserInputException($"{s.Checkpoint} has no EMA weights: set train.use_ema to false in the config to evaluate its weights");
            using var evaluator = new DecoderEvaluator(config.Evaluate, weights, device);
            if (!evaluator.HasMetrics) throw new UserInputException("the config's evaluate section names no metric (FID, IS, KID, LPIPS)");
            var splits = ShardSpec.Split(config.Data, config.Seed);
            var dataset = new DecoderDataset(config.Data, new DataIssues(w => Console.Error.WriteLine($"warning: {w}")),
                requireImageEmbedding: !config.Decoder.Unconditional);
            var loader = new DecoderDataLoader(splits.Val, dataset, new LoaderOptions
            {
                BatchSize = config.Data.BatchSize, NumWorkers = config.Data.NumWorkers,
                MaxSamples = config.Evaluate.NEvaluationSamples, Seed = config.Seed,
            });
            var result = evaluator.Evaluate(trainer, loader, config.Train.CondScale.Expand(decoder.NumUnets), config.Seed);
            var json = new JsonObject();
            foreach (var (k, v) in result.Metrics) json[k] = v;
            if (result.Errors.Count > 0) json["errors"] = new JsonArray(result.Errors.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray());
            foreach (var error in result.Errors) Console.Error.WriteLine($"warning: {error}");
            foreach (var (k, v) in evaluator.InputNotes) json[k] = v;
            Console.WriteLine(json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        });
}
