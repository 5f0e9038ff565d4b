using Dalle2Sharp.Training;
using Spectre.Console;

namespace Dalle2Sharp.Cli;

/// <summary>A live progress bar per phase with samples/s and ETA (terminal only); log lines print above it.</summary>
public sealed class LiveProgress(ProgressContext context) : ITrainingProgress
{
    private ProgressTask? _task;
    private string _name = "";
    private DateTime _start;
    private long _done;

    /// <summary>Runs <paramref name="work"/> with a live view when stdout is an interactive terminal, else with plain lines.</summary>
    public static T Run<T>(Func<ITrainingProgress, T> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            return work(new PlainProgress());
        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => work(new LiveProgress(ctx)));
    }

    public void Line(string text) => AnsiConsole.WriteLine(text);

    public void Phase(string name, long? totalSamples)
    {
        _name = name;
        _start = DateTime.UtcNow;
        _done = 0;
        _task = context.AddTask(Markup.Escape(name), maxValue: totalSamples ?? 1);
        _task.IsIndeterminate = totalSamples is null;
    }

    public void Advance(long samples, string status)
    {
        if (_task is null) return;
        _done += samples;
        double rate = _done / Math.Max(1e-3, (DateTime.UtcNow - _start).TotalSeconds);
        if (!_task.IsIndeterminate) _task.Increment(samples);
        _task.Description = Markup.Escape($"{_name}  {_done} samples  {rate:F1}/s  {status}");
    }

    public void EndPhase()
    {
        if (_task is null) return;
        _task.IsIndeterminate = false;
        _task.Value = _task.MaxValue;
        _task.StopTask();
        _task = null;
    }
}
