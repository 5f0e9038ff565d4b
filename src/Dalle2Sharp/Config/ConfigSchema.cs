using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Config;

/// <summary>
/// JSON Schema (for editor completion) and the Markdown reference, both generated from the config
/// classes so they cannot drift from what the binder accepts.
/// </summary>
public sealed class ConfigSchema
{
    public static string JsonSchema()
    {
        var schema = new ConfigSchema().For(typeof(TrainDecoderConfig));
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
        schema["title"] = "Dalle2Sharp decoder training config";
        return schema.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public JsonObject For(Type type, ConfigMember? member = null)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        if (typeof(ICustomConfigValue).IsAssignableFrom(underlying))
            return ((ICustomConfigValue)Activator.CreateInstance(underlying)!).Schema(this);
        if (ConfigMetadata.IsSection(underlying)) return Section(underlying);
        if (ConfigMetadata.ScalarOrListElement(underlying) is { } sol)
        {
            var list = new JsonObject { ["type"] = "array", ["items"] = For(sol, member) };
            return new JsonObject { ["anyOf"] = new JsonArray(For(sol, member), list) };
        }
        if (ConfigMetadata.ListElement(underlying) is { } element)
        {
            var array = new JsonObject { ["type"] = "array", ["items"] = For(element, member) };
            return member?.SingleOrList == true ? new JsonObject { ["anyOf"] = new JsonArray(For(element, member), array) } : array;
        }
        if (underlying == typeof(JsonObject)) return new JsonObject { ["type"] = "object" };
        var scalar = new JsonObject { ["type"] = JsonType(underlying, member) };
        if (member?.OneOf is { } allowed)
            scalar["enum"] = new JsonArray(allowed
                .Select(a => underlying == typeof(string) ? JsonValue.Create(a) : (JsonNode)JsonValue.Create(int.Parse(a))).ToArray());
        if (Nullable.GetUnderlyingType(type) is not null) scalar["type"] = new JsonArray(scalar["type"]!.GetValue<string>(), "null");
        return scalar;
    }

    private JsonObject Section(Type type)
    {
        var props = new JsonObject();
        var required = new JsonArray();
        var instance = Activator.CreateInstance(type);
        foreach (var m in ConfigMetadata.Members(type))
        {
            var s = For(m.Type, m);
            s["description"] = m.Description;
            var def = m.Property.GetValue(instance);
            if (!m.Required && (def is not null || m.Nullable))
                s["default"] = JsonNode.Parse(WriteDefault(def));
            props[m.Key] = s;
            if (m.Required) required.Add(m.Key);
        }
        var obj = new JsonObject { ["type"] = "object", ["properties"] = props, ["additionalProperties"] = false };
        if (required.Count > 0) obj["required"] = required;
        return obj;
    }

    private static string JsonType(Type t, ConfigMember? member) =>
        t == typeof(string) ? "string"
        : t == typeof(bool) ? "boolean"
        : t == typeof(int) || t == typeof(long) ? "integer"
        : t == typeof(double) ? "number"
        : throw new NotSupportedException(t.ToString());

    private static string WriteDefault(object? value)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream)) ConfigWriter.WriteValue(writer, value);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>The Markdown reference of every option (README's "Config reference").</summary>
    public static string Markdown()
    {
        var sb = new StringBuilder();
        void Emit(Type type, string path)
        {
            var members = ConfigMetadata.Members(type);
            var instance = Activator.CreateInstance(type);
            sb.AppendLine($"#### `{(path.Length == 0 ? "(top level)" : path)}`").AppendLine();
            sb.AppendLine("| key | type | default | meaning |").AppendLine("|---|---|---|---|");
            foreach (var m in members)
            {
                string def = m.Required ? "**required**" : $"`{WriteDefault(m.Property.GetValue(instance))}`";
                string type2 = TypeLabel(m);
                string only = m.OnlyFor is { } o ? $" (only with {o.DiscriminatorKey} {string.Join("/", o.Kinds)})" : "";
                sb.AppendLine($"| `{m.Key}` | {type2} | {def} | {m.Description.Replace("|", "\\|")}{only} |");
            }
            sb.AppendLine();
            foreach (var m in members)
            {
                var u = Nullable.GetUnderlyingType(m.Type) ?? m.Type;
                var child = ConfigMetadata.IsSection(u) ? u : ConfigMetadata.ListElement(u) is { } e && ConfigMetadata.IsSection(e) ? e : null;
                if (child is not null) Emit(child, path.Length == 0 ? m.Key : $"{path}.{m.Key}{(child == u ? "" : "[]")}");
                if (u == typeof(PreprocessingConfig))
                    foreach (var (name, t) in PreprocessingConfig.Transforms)
                        if (ConfigMetadata.Members(t).Count > 0) Emit(t, $"{path}.{m.Key}.{name}");
            }
        }
        Emit(typeof(TrainDecoderConfig), "");
        return sb.ToString().TrimEnd() + "\n";
    }

    private static string TypeLabel(ConfigMember m)
    {
        var u = Nullable.GetUnderlyingType(m.Type) ?? m.Type;
        string label = u == typeof(PreprocessingConfig) ? "object of transforms"
            : ConfigMetadata.IsSection(u) ? "object"
            : ConfigMetadata.ListElement(u) is { } e && ConfigMetadata.IsSection(e)
                ? (m.SingleOrList ? "object or list of objects" : "list of objects")
            : ConfigBinder.TypeName(u).Replace("a list of a ", "list of ").Replace("an ", "").Replace("a ", "")
                .Replace(" or list of them", " or list");
        if (m.OneOf is { } allowed) label += ": " + string.Join(" \\| ", allowed);
        if (m.Nullable) label += " or null";
        return label;
    }
}
