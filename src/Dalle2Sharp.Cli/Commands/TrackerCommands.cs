using System.ComponentModel;
using Dalle2Sharp.Tracking;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli.Commands;

public sealed class TrackerSyncSettings : CommandSettings
{
    [CommandArgument(0, "<FOLDER>")]
    [Description("An outbox folder a run left (data_path/wandb/run-ID, data_path/huggingface/OWNER-NAME), or a data_path to sync all of them.")]
    public string Folder { get; set; } = "";
}

/// <summary>`dalle2 tracker sync FOLDER`: delivers what an offline run, or a run during an outage, kept on disk.</summary>
public sealed class TrackerSyncCommand : Command<TrackerSyncSettings>
{
    public override int Execute(CommandContext context, TrackerSyncSettings settings, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var folders = OutboxSync.Find(settings.Folder);
            if (folders.Count == 0) throw new UserInputException($"{settings.Folder}: no outbox ({Outbox.HeaderName}) in it or below it");
            bool all = true;
            foreach (var folder in folders) all &= OutboxSync.Sync(folder, Console.WriteLine);
            return all ? ExitCodes.Ok : ExitCodes.EnvironmentFailure;
        });
}
