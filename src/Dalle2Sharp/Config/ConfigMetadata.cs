using System.Collections.Concurrent;
using System.Reflection;

namespace Dalle2Sharp.Config;

/// <summary>Base of every config object: remembers which keys the file actually gave.</summary>
public abstract class ConfigSection
{
    private readonly HashSet<string> _given = new(StringComparer.Ordinal);

    /// <summary>True when the key was present in the JSON (even if its value was the default).</summary>
    public bool WasGiven(string key) => _given.Contains(key);

    internal void MarkGiven(string key) => _given.Add(key);
}

/// <summary>One option of a config section, read once from the attributes of its property.</summary>
public sealed record ConfigMember(
    string Key,
    string Description,
    PropertyInfo Property,
    bool Required,
    IReadOnlyList<string>? OneOf,
    OnlyForAttribute? OnlyFor,
    bool SingleOrList,
    bool AcceptNumber)
{
    public Type Type => Property.PropertyType;

    /// <summary>True when null is a legal value (reference type marked nullable, or Nullable&lt;T&gt;).</summary>
    public bool Nullable { get; } = IsNullable(Property);

    private static bool IsNullable(PropertyInfo p)
    {
        if (System.Nullable.GetUnderlyingType(p.PropertyType) is not null) return true;
        if (p.PropertyType.IsValueType) return false;
        return new NullabilityInfoContext().Create(p).WriteState == NullabilityState.Nullable;
    }
}

public static class ConfigMetadata
{
    private static readonly ConcurrentDictionary<Type, IReadOnlyList<ConfigMember>> Cache = new();

    /// <summary>The options of a section in declaration order (the order of `config show` and the reference).</summary>
    public static IReadOnlyList<ConfigMember> Members(Type type) => Cache.GetOrAdd(type, t =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<KeyAttribute>() is not null)
            .OrderBy(p => p.MetadataToken)
            .Select(p =>
            {
                var key = p.GetCustomAttribute<KeyAttribute>()!;
                return new ConfigMember(
                    key.Name, key.Description, p,
                    p.GetCustomAttribute<RequiredAttribute>() is not null,
                    p.GetCustomAttribute<OneOfAttribute>()?.Allowed,
                    p.GetCustomAttribute<OnlyForAttribute>(),
                    p.GetCustomAttribute<SingleOrListAttribute>() is not null,
                    p.GetCustomAttribute<AcceptNumberAttribute>() is not null);
            })
            .ToArray());

    /// <summary>True for the section types (objects with keys of their own).</summary>
    public static bool IsSection(Type type) => typeof(ConfigSection).IsAssignableFrom(type);

    /// <summary>The T of ScalarOrList&lt;T&gt;, or null.</summary>
    public static Type? ScalarOrListElement(Type type) =>
        type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ScalarOrList<>) ? type.GetGenericArguments()[0] : null;

    /// <summary>The T of List&lt;T&gt; / IReadOnlyList&lt;T&gt;, or null.</summary>
    public static Type? ListElement(Type type)
    {
        if (!type.IsGenericType) return null;
        var def = type.GetGenericTypeDefinition();
        return def == typeof(List<>) || def == typeof(IReadOnlyList<>) ? type.GetGenericArguments()[0] : null;
    }

    /// <summary>The valid keys nearest to a mistyped one: abbreviations (lr for learning_rate) first, then by edit distance.</summary>
    public static IReadOnlyList<string> Nearest(string key, IEnumerable<string> valid, int max = 3)
    {
        string k = key.ToLowerInvariant();
        string initials = string.Concat(k.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(w => w[0]));
        return valid
            .Select(v => (v, score: Score(k, initials, v.ToLowerInvariant())))
            .Where(x => x.score <= Math.Max(3, k.Length / 2))
            .OrderBy(x => x.score).ThenBy(x => x.v, StringComparer.Ordinal)
            .Take(max).Select(x => x.v).ToArray();
    }

    private static int Score(string key, string initials, string candidate)
    {
        if (candidate == initials || key.Replace("_", "") == candidate.Replace("_", "")) return 0;
        if (candidate.Length >= 3 && (key.Contains(candidate) || candidate.Contains(key))) return 1;
        return Levenshtein(key, candidate);
    }

    internal static int Levenshtein(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
