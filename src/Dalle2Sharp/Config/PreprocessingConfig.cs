using System.Text.Json;
using System.Text.Json.Nodes;

namespace Dalle2Sharp.Config;

/// <summary>
/// data.preprocessing: an ordered JSON object of transform name → options (an object), true (the
/// transform with its defaults) or false (left out). Order matters, as in torchvision's Compose.
/// </summary>
public sealed class PreprocessingConfig : ICustomConfigValue
{
    /// <summary>Transform names and their option types, as torchvision names them.</summary>
    public static readonly IReadOnlyDictionary<string, Type> Transforms = new Dictionary<string, Type>
    {
        ["RandomResizedCrop"] = typeof(RandomResizedCropConfig),
        ["RandomHorizontalFlip"] = typeof(RandomHorizontalFlipConfig),
        ["Resize"] = typeof(ResizeConfig),
        ["CenterCrop"] = typeof(CenterCropConfig),
        ["ToTensor"] = typeof(ToTensorConfig),
    };

    public List<TransformConfig> Steps { get; } = [];

    public static PreprocessingConfig Default()
    {
        var p = new PreprocessingConfig();
        p.Steps.Add(new ToTensorConfig());
        return p;
    }

    public void Bind(JsonElement element, string path, ConfigBinder binder)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            binder.Error(path, $"must be an object of transform name → options, got {ConfigBinder.Describe(element)}");
            return;
        }
        foreach (var prop in element.EnumerateObject())
        {
            string childPath = ConfigBinder.Join(path, prop.Name);
            if (!Transforms.TryGetValue(prop.Name, out var type))
            {
                binder.Error(childPath, $"\"{prop.Name}\" is not one of {string.Join(", ", Transforms.Keys)}");
                continue;
            }
            switch (prop.Value.ValueKind)
            {
                case JsonValueKind.False:
                    continue;
                case JsonValueKind.True:
                    var defaults = (TransformConfig)Activator.CreateInstance(type)!;
                    foreach (var m in ConfigMetadata.Members(type).Where(m => m.Required))
                        binder.Error(ConfigBinder.Join(childPath, m.Key), "required (give the transform's options as an object)");
                    Steps.Add(defaults);
                    continue;
                case JsonValueKind.Object:
                    if (binder.BindSection(type, prop.Value, childPath) is TransformConfig t) Steps.Add(t);
                    continue;
                default:
                    binder.Error(childPath, $"must be an object of options, true or false, got {ConfigBinder.Describe(prop.Value)}");
                    continue;
            }
        }
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (var step in Steps)
        {
            writer.WritePropertyName(step.Name);
            if (ConfigMetadata.Members(step.GetType()).Count == 0) writer.WriteBooleanValue(true);
            else ConfigWriter.WriteValue(writer, step);
        }
        writer.WriteEndObject();
    }

    public JsonObject Schema(ConfigSchema schema)
    {
        var props = new JsonObject();
        foreach (var (name, type) in Transforms)
            props[name] = new JsonObject { ["anyOf"] = new JsonArray(schema.For(type), new JsonObject { ["type"] = "boolean" }) };
        return new JsonObject { ["type"] = "object", ["properties"] = props, ["additionalProperties"] = false };
    }
}

public abstract class TransformConfig : ConfigSection
{
    public string Name => GetType().Name.Replace("Config", "");
}

public sealed class RandomResizedCropConfig : TransformConfig
{
    [Key("size", "Output size: one number (square) or [height, width]."), Required]
    public ScalarOrList<int> Size { get; set; } = 0;

    [Key("scale", "Range of the crop's area as a fraction of the image.")]
    public List<double> Scale { get; set; } = [0.08, 1.0];

    [Key("ratio", "Range of the crop's aspect ratio (width / height).")]
    public List<double> Ratio { get; set; } = [3.0 / 4.0, 4.0 / 3.0];

    [Key("interpolation", "Resampling filter."), OneOf("bilinear", "bicubic", "nearest")]
    public string Interpolation { get; set; } = "bilinear";

    [Key("antialias", "Antialias when downsampling (torchvision's default for tensors and PIL).")]
    public bool Antialias { get; set; } = true;
}

public sealed class RandomHorizontalFlipConfig : TransformConfig
{
    [Key("p", "Probability of flipping.")]
    public double P { get; set; } = 0.5;
}

public sealed class ResizeConfig : TransformConfig
{
    [Key("size", "One number (the shorter side, aspect kept) or [height, width]."), Required]
    public ScalarOrList<int> Size { get; set; } = 0;

    [Key("interpolation", "Resampling filter."), OneOf("bilinear", "bicubic", "nearest")]
    public string Interpolation { get; set; } = "bilinear";

    [Key("max_size", "Upper bound of the longer side when size is one number.")]
    public int? MaxSize { get; set; }

    [Key("antialias", "Antialias when downsampling.")]
    public bool Antialias { get; set; } = true;
}

public sealed class CenterCropConfig : TransformConfig
{
    [Key("size", "Output size: one number (square) or [height, width]."), Required]
    public ScalarOrList<int> Size { get; set; } = 0;
}

public sealed class ToTensorConfig : TransformConfig;
