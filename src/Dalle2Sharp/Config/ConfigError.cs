namespace Dalle2Sharp.Config;

/// <summary>One problem in a config file: the JSON path of the value and what is wrong or allowed.</summary>
public sealed record ConfigError(string Path, string Message)
{
    public override string ToString() => string.IsNullOrEmpty(Path) ? Message : $"{Path}: {Message}";
}

/// <summary>Thrown when a config cannot be used; carries every error found, not just the first.</summary>
public sealed class ConfigException(IReadOnlyList<ConfigError> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}
