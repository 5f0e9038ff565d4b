using System.ComponentModel;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli.Commands;

public sealed class DataCheckSettings : CommandSettings
{
    [CommandOption("-c|--config <FILE>"), Description("Training config whose data section is checked.")]
    public string Config { get; set; } = "";

    [CommandOption("--decode"), Description("Also decode every image (slower).")]
    public bool Decode { get; set; }

    public override ValidationResult Validate() =>
        string.IsNullOrEmpty(Config) ? ValidationResult.Error("--config FILE is required") : ValidationResult.Success();
}

/// <summary>`dalle2 data check`: what training would read, checked up front; exit 1 when it would fail or silently skip data.</summary>
public sealed class DataCheckCommand : Command<DataCheckSettings>
{
    public override int Execute(CommandContext context, DataCheckSettings s, CancellationToken cancellationToken) =>
        ExitCodes.Run(() =>
        {
            var config = ConfigLoader.LoadFile(s.Config);
            var report = DataCheck.Run(config, s.Decode, _ => { }, cancellationToken);
            var table = new Table().AddColumns("split", "shard", "samples", "embedding rows", "problems");
            foreach (var shard in report.Shards)
                table.AddRow(shard.Split, Markup.Escape(Runtime.SafeUrl.Redact(shard.Shard.Url)), shard.Samples.ToString(),
                    shard.EmbeddingRows.ToString(),
                    Markup.Escape(shard.Problems.Count == 0 ? "ok" : string.Join("; ", shard.Problems)));
            AnsiConsole.Write(table);
            Console.WriteLine($"usable shards: train {report.UsableBySplit["train"]}, val {report.UsableBySplit["val"]}, " +
                              $"test {report.UsableBySplit["test"]}; {report.ShardsWithoutEmbeddings:N0} shard number(s) in the range have no " +
                              "embedding file (training skips them)");
            // Each problem also as one plain line (the table wraps long cells; logs and grep want whole lines).
            foreach (var shard in report.Shards)
                foreach (var problem in shard.Problems) Console.WriteLine($"problem: {shard.Split} {Runtime.SafeUrl.Redact(shard.Shard.Url)}: " +
                    $"{problem}");
            foreach (var problem in report.Problems) Console.WriteLine($"problem: {problem}");
            int bad = report.Shards.Count(x => x.Problems.Count > 0);
            Console.WriteLine(report.Ok ? $"verdict: ok ({report.Shards.Count} shard(s) checked{(s.Decode ? ", images decoded" : "")})"
                : $"verdict: NOT ok: {bad} shard(s) with problems{(report.Problems.Count > 0 ? $", {report.Problems.Count} split problem(s)" : "")}");
            return report.Ok ? ExitCodes.Ok : ExitCodes.Failure;
        });
}
