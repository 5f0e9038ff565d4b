namespace Dalle2Sharp.Tests.Servers;

/// <summary>Sets environment variables for a test and restores them when disposed (tests in the "Services" collection only).</summary>
public sealed class EnvScope : IDisposable
{
    private readonly Dictionary<string, string?> _saved = new();

    public EnvScope(params IReadOnlyDictionary<string, string?>[] sets)
    {
        foreach (var set in sets)
            foreach (var (k, v) in set)
            {
                if (!_saved.ContainsKey(k)) _saved[k] = Environment.GetEnvironmentVariable(k);
                Environment.SetEnvironmentVariable(k, v);
            }
    }

    public static IReadOnlyDictionary<string, string?> Of(IReadOnlyDictionary<string, string> values) =>
        values.ToDictionary(kv => kv.Key, kv => (string?)kv.Value);

    public void Dispose()
    {
        foreach (var (k, v) in _saved) Environment.SetEnvironmentVariable(k, v);
    }
}
