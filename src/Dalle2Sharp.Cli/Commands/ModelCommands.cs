using System.ComponentModel;
using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli.Commands;

public sealed class ModelSummarySettings : CommandSettings
{
    [CommandOption("-c|--config <FILE>")]
    [Description("Decoder training config whose decoder section describes the model.")]
    public string Config { get; set; } = "";

    [CommandOption("--json")]
    [Description("Print JSON instead of text.")]
    public bool Json { get; set; }

    public override Spectre.Console.ValidationResult Validate() =>
        string.IsNullOrEmpty(Config)
            ? Spectre.Console.ValidationResult.Error("--config FILE is required")
            : Spectre.Console.ValidationResult.Success();
}

public sealed class ModelSummaryCommand : Command<ModelSummarySettings>
{
    public override int Execute(CommandContext context, ModelSummarySettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var summary = ModelSummary.Of(ConfigLoader.LoadFile(settings.Config).Decoder);
            Console.WriteLine(settings.Json ? summary.ToJson() : summary.ToText());
        });
}
