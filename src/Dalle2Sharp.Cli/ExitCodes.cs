using Dalle2Sharp.Config;
using Dalle2Sharp;

namespace Dalle2Sharp.Cli;

/// <summary>
/// Exit codes: 0 success, 1 a failure while working, 2 bad input (config or arguments).
/// User errors print their message only; a stack trace is never the answer to bad input.
/// </summary>
public static class ExitCodes
{
    public const int Ok = 0, Failure = 1, BadInput = 2;

    public static int Run(Action action)
    {
        try
        {
            action();
            return Ok;
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"config error{(e.Errors.Count > 1 ? $"s ({e.Errors.Count})" : "")}:");
            foreach (var error in e.Errors) Console.Error.WriteLine($"  {error}");
            return BadInput;
        }
        catch (UserInputException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return BadInput;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("DALLE2_DEBUG") != "1")
        {
            Console.Error.WriteLine($"error: {e.Message} ({e.GetType().Name}; set DALLE2_DEBUG=1 for the stack trace)");
            return Failure;
        }
    }
}
