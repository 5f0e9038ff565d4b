using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Config;

/// <summary>A config value with a JSON shape of its own (e.g. preprocessing, an ordered map of transforms).</summary>
public interface ICustomConfigValue
{
    void Bind(JsonElement element, string path, ConfigBinder binder);
    void Write(Utf8JsonWriter writer);
    JsonObject Schema(ConfigSchema schema);
}

/// <summary>
/// Binds JSON onto the config classes, collecting every error with its JSON path instead of
/// stopping at the first (System.Text.Json's deserializer stops at the first and does not know
/// "one value or one per unet").
/// </summary>
public sealed class ConfigBinder
{
    private readonly List<ConfigError> _errors = [];
    public IReadOnlyList<ConfigError> Errors => _errors;

    public void Error(string path, string message) => _errors.Add(new ConfigError(path, message));

    public T BindRoot<T>(JsonElement root) where T : ConfigSection, new() => (T)BindSection(typeof(T), root, "")!;

    public object? BindSection(Type type, JsonElement element, string path)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            Error(path, $"must be an object, got {Describe(element)}");
            return null;
        }
        var section = (ConfigSection)Activator.CreateInstance(type)!;
        var members = ConfigMetadata.Members(type);
        var byKey = members.ToDictionary(m => m.Key, StringComparer.Ordinal);
        foreach (var prop in element.EnumerateObject())
        {
            string childPath = Join(path, prop.Name);
            if (!byKey.TryGetValue(prop.Name, out var member))
            {
                var near = ConfigMetadata.Nearest(prop.Name, byKey.Keys);
                Error(childPath, near.Count > 0
                    ? $"unknown key; did you mean {string.Join(", ", near)}?"
                    : $"unknown key; valid keys are {string.Join(", ", byKey.Keys)}");
                continue;
            }
            section.MarkGiven(member.Key);
            if (prop.Value.ValueKind == JsonValueKind.Null)
            {
                if (member.Required) Error(childPath, "required (got null)");
                else if (!member.Nullable) Error(childPath, $"must be {TypeName(member.Type)}, got null");
                else member.Property.SetValue(section, null);
                continue;
            }
            var value = BindValue(member.Type, prop.Value, childPath, member);
            if (value is not null) member.Property.SetValue(section, value);
        }
        foreach (var member in members)
        {
            if (member.Required && !section.WasGiven(member.Key))
                Error(Join(path, member.Key), "required");
        }
        // Options that belong to another kind (e.g. wandb_entity with log_type console) are errors, not silently ignored.
        foreach (var member in members.Where(m => m.OnlyFor is not null && section.WasGiven(m.Key)))
        {
            var discriminator = byKey[member.OnlyFor!.DiscriminatorKey];
            var kind = discriminator.Property.GetValue(section) as string;
            if (kind is not null && !member.OnlyFor.Kinds.Contains(kind))
                Error(Join(path, member.Key),
                    $"only allowed when {discriminator.Key} is {string.Join(" or ", member.OnlyFor.Kinds)} (it is \"{kind}\")");
        }
        return section;
    }

    public object? BindValue(Type type, JsonElement element, string path, ConfigMember? member = null)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            if (Nullable.GetUnderlyingType(type) is not null || !type.IsValueType) return null;
            Error(path, $"must be {TypeName(type)}, got null");
            return null;
        }
        var underlying = Nullable.GetUnderlyingType(type) ?? type;

        if (typeof(ICustomConfigValue).IsAssignableFrom(underlying))
        {
            var custom = (ICustomConfigValue)Activator.CreateInstance(underlying)!;
            custom.Bind(element, path, this);
            return custom;
        }
        if (ConfigMetadata.IsSection(underlying)) return BindSection(underlying, element, path);
        if (ConfigMetadata.ScalarOrListElement(underlying) is { } soleType)
        {
            if (element.ValueKind == JsonValueKind.Array)
            {
                var list = BindList(soleType, element, path, member);
                return list is null ? null : Activator.CreateInstance(underlying, list);
            }
            int before = _errors.Count;
            var scalar = BindValue(soleType, element, path, member);
            return _errors.Count > before ? null : Activator.CreateInstance(underlying, [scalar]);
        }
        if (ConfigMetadata.ListElement(underlying) is { } elementType)
        {
            if (element.ValueKind != JsonValueKind.Array && member?.SingleOrList == true)
            {
                var single = BindValue(elementType, element, path + "[0]", member);
                return WrapList(elementType, single is null ? [] : [single]);
            }
            return BindList(elementType, element, path, member) is { } list ? list : null;
        }
        if (underlying == typeof(JsonObject))
        {
            if (element.ValueKind != JsonValueKind.Object) { Error(path, $"must be an object, got {Describe(element)}"); return null; }
            return JsonNode.Parse(element.GetRawText())!.AsObject();
        }
        return BindScalar(underlying, element, path, member);
    }

    private IList? BindList(Type elementType, JsonElement element, string path, ConfigMember? member)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            Error(path, $"must be a list of {TypeName(elementType)}, got {Describe(element)}");
            return null;
        }
        var items = new List<object?>();
        int i = 0;
        foreach (var item in element.EnumerateArray())
            items.Add(BindValue(elementType, item, $"{path}[{i++}]", member));
        // A section with errors inside still counts (so "one per unet" rules see the right count);
        // a scalar that failed to bind leaves a hole, and the list is dropped.
        bool holes = items.Any(x => x is null) && elementType.IsValueType && Nullable.GetUnderlyingType(elementType) is null;
        return holes ? null : WrapList(elementType, items);
    }

    private static IList WrapList(Type elementType, List<object?> items)
    {
        var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(elementType))!;
        foreach (var item in items) list.Add(item);
        return list;
    }

    private object? BindScalar(Type type, JsonElement element, string path, ConfigMember? member)
    {
        if (type == typeof(string))
        {
            string? s = element.ValueKind switch
            {
                JsonValueKind.String => element.GetString(),
                JsonValueKind.Number when member?.AcceptNumber == true => element.GetRawText(),
                _ => null,
            };
            if (s is null) { Error(path, $"must be a string, got {Describe(element)}"); return null; }
            if (member?.OneOf is { } allowed && !allowed.Contains(s))
            {
                Error(path, $"\"{s}\" is not one of {string.Join(", ", allowed)}");
                return null;
            }
            return s;
        }
        if (type == typeof(bool))
        {
            if (element.ValueKind is JsonValueKind.True or JsonValueKind.False) return element.GetBoolean();
            Error(path, $"must be true or false, got {Describe(element)}");
            return null;
        }
        if (type == typeof(int) || type == typeof(long))
        {
            // Like pydantic's lax mode: 2.0 is the integer 2, 2.5 is an error.
            if (element.ValueKind == JsonValueKind.Number && element.TryGetDouble(out var d) && d == Math.Floor(d)
                && d >= (type == typeof(int) ? int.MinValue : long.MinValue) && d <= (type == typeof(int) ? int.MaxValue : long.MaxValue))
            {
                object v = type == typeof(int) ? (object)(int)d : element.TryGetInt64(out var l) ? l : (long)d;
                if (member?.OneOf is { } allowed && !allowed.Contains(Convert.ToString(v, CultureInfo.InvariantCulture)))
                {
                    Error(path, $"{v} is not one of {string.Join(", ", allowed)}");
                    return null;
                }
                return v;
            }
            Error(path, $"must be an integer, got {Describe(element)}");
            return null;
        }
        if (type == typeof(double))
        {
            if (element.ValueKind == JsonValueKind.Number) return element.GetDouble();
            Error(path, $"must be a number, got {Describe(element)}");
            return null;
        }
        throw new NotSupportedException($"config binder has no rule for {type}");
    }

    public static string Join(string path, string key) => string.IsNullOrEmpty(path) ? key : $"{path}.{key}";

    public static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{e.GetString()}\"",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => "null",
    };

    public static string TypeName(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(string)) return "a string";
        if (t == typeof(bool)) return "true or false";
        if (t == typeof(int) || t == typeof(long)) return "an integer";
        if (t == typeof(double)) return "a number";
        if (ConfigMetadata.ScalarOrListElement(t) is { } e) return $"{TypeName(e)} or a list of them";
        if (ConfigMetadata.ListElement(t) is { } l) return $"a list of {TypeName(l)}";
        return "an object";
    }
}
