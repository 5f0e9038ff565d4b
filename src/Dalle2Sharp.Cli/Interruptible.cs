using System.Runtime.InteropServices;

namespace Dalle2Sharp.Cli;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM ask a long command to stop at its next safe point instead of killing
/// it: the first signal cancels the token handed to the work, a second Ctrl-C ends the process as usual.
/// </summary>
public static class Interruptible
{
    /// <summary>Runs <paramref name="work"/>; returns 0 when it completed, 130 (128 + SIGINT) when it stopped on a signal.</summary>
    public static int Run(CancellationToken outer, Func<CancellationToken, bool> work)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);
        void Stop(string signal)
        {
            if (cancel.IsCancellationRequested) return;
            Console.Error.WriteLine($"{signal}: finishing the current step and saving a checkpoint (Ctrl-C again to stop at once)");
            cancel.Cancel();
        }
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return;   // second Ctrl-C: default handling ends the process
            e.Cancel = true;
            Stop("SIGINT");
        };
        Console.CancelKeyPress += onCancel;
        // A second SIGTERM keeps the default action (the process ends), as a second Ctrl-C does.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            if (cancel.IsCancellationRequested) return;
            context.Cancel = true;
            Stop("SIGTERM");
        });
        try
        {
            return work(cancel.Token) ? ExitCodes.Ok : ExitCodes.Interrupted;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
