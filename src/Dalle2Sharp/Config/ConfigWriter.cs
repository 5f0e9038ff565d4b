using System.Collections;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Config;

/// <summary>Writes a config back as JSON with every default filled in (`dalle2 config show`, checkpoints).</summary>
public static class ConfigWriter
{
    public static string ToJson(ConfigSection config)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            WriteValue(writer, config);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null: writer.WriteNullValue(); break;
            case ICustomConfigValue custom: custom.Write(writer); break;
            case ConfigSection section: WriteSection(writer, section); break;
            case IScalarOrList sol:
                if (sol.IsList) WriteList(writer, sol.Values);
                else WriteValue(writer, sol.Values.Single());
                break;
            case string s: writer.WriteStringValue(s); break;
            case bool b: writer.WriteBooleanValue(b); break;
            case int i: writer.WriteNumberValue(i); break;
            case long l: writer.WriteNumberValue(l); break;
            case double d: writer.WriteNumberValue(d); break;
            case JsonNode node: node.WriteTo(writer); break;
            case IEnumerable list: WriteList(writer, list); break;
            default: throw new NotSupportedException($"config writer has no rule for {value.GetType()}");
        }
    }

    private static void WriteList(Utf8JsonWriter writer, IEnumerable items)
    {
        writer.WriteStartArray();
        foreach (var item in items) WriteValue(writer, item);
        writer.WriteEndArray();
    }

    private static void WriteSection(Utf8JsonWriter writer, ConfigSection section)
    {
        var members = ConfigMetadata.Members(section.GetType());
        writer.WriteStartObject();
        foreach (var m in members)
        {
            if (m.OnlyFor is { } only)
            {
                // Options of another kind (wandb_entity under a console logger) are not part of the resolved config.
                var kind = members.First(x => x.Key == only.DiscriminatorKey).Property.GetValue(section) as string;
                if (kind is null || !only.Kinds.Contains(kind)) continue;
            }
            writer.WritePropertyName(m.Key);
            var value = m.Property.GetValue(section);
            if (m.AcceptNumber && value is string s && int.TryParse(s, out var number)) value = number;
            WriteValue(writer, value);
        }
        writer.WriteEndObject();
    }
}
