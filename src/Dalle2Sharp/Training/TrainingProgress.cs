namespace Dalle2Sharp.Training;

/// <summary>
/// Where the training loop reports: log lines, and the progress of each phase (a live view in a
/// terminal; nothing extra when output goes to a file or CI, where the periodic log lines suffice).
/// </summary>
public interface ITrainingProgress
{
    void Line(string text);
    /// <summary>A phase starts; <paramref name="totalSamples"/> is null when its length is unknown.</summary>
    void Phase(string name, long? totalSamples);
    void Advance(long samples, string status);
    void EndPhase();
}

/// <summary>Plain lines only: for logs, pipes and CI.</summary>
public sealed class PlainProgress(Action<string>? print = null) : ITrainingProgress
{
    private readonly Action<string> _print = print ?? Console.WriteLine;
    public void Line(string text) => _print(text);
    public void Phase(string name, long? totalSamples) { }
    public void Advance(long samples, string status) { }
    public void EndPhase() { }
}
