using Dalle2Sharp.Config;
using Dalle2Sharp;

namespace Dalle2Sharp.Cli;

/// <summary>
/// Exit codes: 0 success, 1 a failure while working, 2 bad input (config or arguments), 3 the
/// environment failed (network, native libraries, accelerator), 130 stopped by SIGINT/SIGTERM after
/// saving. User errors print their message only; DALLE2_DEBUG=1 prints every exception in full.
/// </summary>
public static class ExitCodes
{
    public const int Ok = 0, Failure = 1, BadInput = 2, EnvironmentFailure = 3, Interrupted = 130;

    public static int Run(Action action) => Run(() => { action(); return Ok; });

    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"config error{(e.Errors.Count > 1 ? $"s ({e.Errors.Count})" : "")}:");
            foreach (var error in e.Errors) Console.Error.WriteLine($"  {error}");
            if (Debug) Console.Error.WriteLine(e.ToString());
            return BadInput;
        }
        catch (UserInputException e)
        {
            Console.Error.WriteLine(Debug ? e.ToString() : $"error: {e.Message}");
            return BadInput;
        }
        catch (Exception e) when (Debug)
        {
            Console.Error.WriteLine(e.ToString());
            return EnvironmentProblem(e) is not null ? EnvironmentFailure : Failure;
        }
        catch (Exception e) when (EnvironmentProblem(e) is { } check)
        {
            Console.Error.WriteLine($"error: {e.Message} ({e.GetType().Name}). {check} (set DALLE2_DEBUG=1 for the stack trace)");
            return EnvironmentFailure;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: {e.Message} ({e.GetType().Name}; set DALLE2_DEBUG=1 for the stack trace)");
            return Failure;
        }
    }

    private static bool Debug => Environment.GetEnvironmentVariable("DALLE2_DEBUG") == "1";

    /// <summary>What to check when the failure lies outside the program and its input, or null.</summary>
    private static string? EnvironmentProblem(Exception e) => e switch
    {
        HttpRequestException or System.Net.Sockets.SocketException or TaskCanceledException { InnerException: TimeoutException }
            or Runtime.NetworkException
            => "Check the network connection, proxy settings and that the server is up.",
        Runtime.MpiException => "Check the Open MPI installation (openmpi-bin, libopenmpi3) and how the ranks were launched.",
        DllNotFoundException or EntryPointNotFoundException or BadImageFormatException
            => "A native library failed to load: check the libtorch package for this platform and, for JPEG, libturbojpeg0.",
        TypeInitializationException { InnerException: { } inner } => EnvironmentProblem(inner),
        _ when e.Message.Contains("CUDA", StringComparison.OrdinalIgnoreCase)
            => "Check the GPU driver, that the CUDA build of libtorch is installed, and train.device.",
        _ => e.InnerException is { } inner ? EnvironmentProblem(inner) : null,
    };
}
