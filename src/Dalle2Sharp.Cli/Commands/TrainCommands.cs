using System.ComponentModel;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Dalle2Sharp.Training;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli.Commands;

public sealed class TrainDecoderSettings : CommandSettings
{
    [CommandOption("-c|--config <FILE>")]
    [Description("Decoder training config (DALLE2-pytorch's format).")]
    public string Config { get; set; } = "";

    [CommandOption("--set <PATH=VALUE>")]
    [Description("Override a config value without editing the file (repeatable): --set train.device=cpu --set decoder.unets[0].dim=32.")]
    public string[] Set { get; set; } = [];

    [CommandOption("--max-steps <N>")]
    [Description("Smoke run: stop after N training steps, then validate, sample, evaluate and save as at an epoch's end.")]
    public long? MaxSteps { get; set; }

    public override Spectre.Console.ValidationResult Validate() =>
        string.IsNullOrEmpty(Config) ? Spectre.Console.ValidationResult.Error("--config FILE is required")
        : MaxSteps is <= 0 ? Spectre.Console.ValidationResult.Error("--max-steps must be at least 1")
        : Spectre.Console.ValidationResult.Success();
}

public sealed class TrainDecoderCommand : Command<TrainDecoderSettings>
{
    public override int Execute(CommandContext context, TrainDecoderSettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var config = ConfigLoader.LoadFile(settings.Config, settings.Set);
            // With overrides the run records the config it used (resolved), not the file as written.
            string? configFile = settings.Set.Length == 0 ? settings.Config : null;
            // Under mpirun/srun: one rank per process, data-parallel; rank 0 prints and saves, the others stay quiet.
            var collectives = Runtime.Mpi.StartIfLaunched();
            int code = ExitCodes.Run(() => collectives.IsRoot
                ? Interruptible.Run(cancellationToken, cancel => LiveProgress.Run(progress =>
                    new TrainDecoderLoop(config, progress) { MaxSteps = settings.MaxSteps, Collectives = collectives }.Run(configFile, cancel)))
                : Interruptible.Run(cancellationToken, cancel =>
                    new TrainDecoderLoop(config, new PlainProgress(_ => { })) { MaxSteps = settings.MaxSteps, Collectives = collectives }
                        .Run(configFile, cancel)));
            // A rank that failed ends all of them (the others may be waiting for it in a collective); an interrupted run
            // stopped on every rank at the same step, so all finish normally.
            if (code is not (ExitCodes.Ok or ExitCodes.Interrupted)) collectives.Abort(code);
            collectives.Dispose();
            return code;
        });
}

public sealed class QuickstartSettings : CommandSettings
{
    [CommandOption("--config <FILE>")]
    [Description("Config to train with (default configs/quickstart.json).")]
    public string Config { get; set; } = "configs/quickstart.json";
}

/// <summary>Generates the quickstart dataset (once, deterministically) and trains on it.</summary>
public sealed class QuickstartCommand : Command<QuickstartSettings>
{
    public override int Execute(CommandContext context, QuickstartSettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var config = ConfigLoader.LoadFile(settings.Config);
            var folder = Path.GetDirectoryName(config.Data.WebdatasetBaseUrl)!;
            int shards = (int)(config.Data.EndShard - config.Data.StartShard + 1);
            if (!File.Exists(Path.Combine(folder, $"{config.Data.EndShard:D5}.tar")))
            {
                Console.WriteLine($"writing the quickstart dataset to {folder}: {shards} shards × 640 images of coloured shapes " +
                                  "with stand-in embeddings …");
                SyntheticShapes.WriteDataset(folder, shards, perShard: 640, size: config.Decoder.ImageSizes?[0] ?? config.Decoder.ImageSize!.Value);
            }
            return Interruptible.Run(cancellationToken,
                cancel => LiveProgress.Run(progress => new TrainDecoderLoop(config, progress).Run(settings.Config, cancel)));
        });
}

public sealed class MpiCheckSettings : CommandSettings
{
    [CommandOption("--steps <N>")]
    [Description("Training steps of the small check decoder (default 3).")]
    public int Steps { get; set; } = 3;

    [CommandOption("--batch <N>")]
    [Description("Samples per rank per step (default 2).")]
    public int Batch { get; set; } = 2;

    [CommandOption("--save <FILE>")]
    [Description("Rank 0 saves the check decoder's checkpoint here (to compare runs with different rank counts).")]
    public string? Save { get; set; }

    public override Spectre.Console.ValidationResult Validate() =>
        Steps < 1 || Batch < 1 ? Spectre.Console.ValidationResult.Error("--steps and --batch must be at least 1")
                               : Spectre.Console.ValidationResult.Success();
}

/// <summary>
/// Checks a data-parallel launch (`mpirun -np N dalle2 mpi-check`): collective latency and bandwidth, and that N ranks
/// training together end with identical weights. Exit 1 when they do not.
/// </summary>
public sealed class MpiCheckCommand : Command<MpiCheckSettings>
{
    public override int Execute(CommandContext context, MpiCheckSettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            using var collectives = Runtime.Mpi.StartIfLaunched();
            var report = Training.DataParallelCheck.Run(collectives, settings.Steps, settings.Batch, settings.Save, Console.WriteLine);
            return report.RanksAgree ? ExitCodes.Ok : ExitCodes.Failure;
        });
}
