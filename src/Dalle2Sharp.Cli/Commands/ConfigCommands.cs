using System.ComponentModel;
using Dalle2Sharp.Config;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli.Commands;

public sealed class ConfigFileSettings : CommandSettings
{
    [CommandArgument(0, "<FILE>")]
    [Description("Path of the decoder training config (JSON).")]
    public string File { get; set; } = "";
}

public sealed class ConfigValidateCommand : Command<ConfigFileSettings>
{
    public override int Execute(CommandContext context, ConfigFileSettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var c = ConfigLoader.LoadFile(settings.File);
            var sizes = c.Decoder.ImageSizes ?? [c.Decoder.ImageSize!.Value];
            Console.WriteLine($"{settings.File}: valid — {c.Decoder.Unets.Count} unet(s) at {string.Join("→", sizes)} px, " +
                              $"T={c.Decoder.Timesteps}, shards {c.Data.StartShard}..{c.Data.EndShard}, batch {c.Data.BatchSize}, " +
                              $"{c.Train.Epochs} epoch(s) on {c.Train.Device}");
        });
}

public sealed class ConfigShowCommand : Command<ConfigFileSettings>
{
    public override int Execute(CommandContext context, ConfigFileSettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() => Console.WriteLine(ConfigWriter.ToJson(ConfigLoader.LoadFile(settings.File))));
}

public sealed class ConfigSchemaCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        Console.WriteLine(ConfigSchema.JsonSchema());
        return 0;
    }
}

public sealed class ConfigReferenceCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        Console.Write(ConfigSchema.Markdown());
        return 0;
    }
}
