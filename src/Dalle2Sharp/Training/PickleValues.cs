using System.Collections;
using System.Collections.Specialized;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Training;

/// <summary>Converts between JSON and the Python objects a pickle holds (dict, list, str, int, float, bool, None).</summary>
public static class PickleValues
{
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.Aggregate(new OrderedDictionary(), (d, kv) => { d[kv.Key] = FromJson(kv.Value); return d; }),
        JsonArray a => new ArrayList(a.Select(FromJson).ToArray()),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v => v.GetValue<double>(),
        _ => throw new NotSupportedException(node.GetType().Name),
    };

    public static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        IDictionary d => new JsonObject(d.Cast<DictionaryEntry>().Select(e => KeyValuePair.Create(e.Key.ToString()!, ToJson(e.Value)))),
        string s => JsonValue.Create(s),
        IList l => new JsonArray(l.Cast<object?>().Select(ToJson).ToArray()),
        bool b => JsonValue.Create(b),
        int i => JsonValue.Create(i),
        long l => JsonValue.Create(l),
        double d => JsonValue.Create(d),
        float f => JsonValue.Create((double)f),
        _ => JsonValue.Create(value.ToString()),
    };
}
