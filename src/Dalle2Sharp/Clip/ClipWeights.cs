using System.Text.Json;
using Dalle2Sharp.Runtime;
using static TorchSharp.torch;

namespace Dalle2Sharp.Clip;

/// <summary>
/// Where CLIP weights come from: OpenAI's released TorchScript archives (read directly, no TorchScript
/// runtime), open_clip's .bin / .pt state dicts and .safetensors files; kept in the weights folder the
/// metric networks use, downloaded with progress and the sha256 OpenAI's URLs carry when reachable.
/// </summary>
public static class ClipWeights
{
    /// <summary>openai/CLIP's released models: the URL path holds the file's sha256.</summary>
    public static readonly IReadOnlyDictionary<string, string> OpenAiModels = new Dictionary<string, string>
    {
        ["ViT-B/32"] = "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        ["ViT-B/16"] = "https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        ["ViT-L/14"] = "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        ["ViT-L/14@336px"] =
            "https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
    };

    /// <summary>The ModifiedResNet family: named so the refusal can say what it is.</summary>
    private static readonly HashSet<string> ResNetModels = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64"];

    /// <summary>
    /// The weights file for an OpenAI model name (found in <paramref name="folder"/> under OpenAI's file name,
    /// else downloaded when reachable), or a path to a file given as the model.
    /// </summary>
    public static string Locate(string model, string folder, Action<string>? print, IoTimeouts? timeouts = null)
    {
        if (File.Exists(model)) return model;
        if (ResNetModels.Contains(model))
            throw new UserInputException($"decoder.clip.model {model}: the ModifiedResNet CLIP family is not supported; " +
                                         "use a vision transformer (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px)");
        if (!OpenAiModels.TryGetValue(model, out var url))
            throw new UserInputException($"decoder.clip.model {model}: not an OpenAI CLIP model ({string.Join(", ", OpenAiModels.Keys)}) " +
                                         "nor an existing weights file");
        var path = Path.Combine(folder, url[(url.LastIndexOf('/') + 1)..]);
        if (File.Exists(path)) return path;
        Directory.CreateDirectory(folder);
        string sha256 = url.Split('/')[^2];
        // $DALLE2_WEIGHTS_MIRROR: a URL laid out as the weights folder (as for the metric networks), for machines without internet.
        if (Environment.GetEnvironmentVariable("DALLE2_WEIGHTS_MIRROR") is { Length: > 0 } mirror)
            url = $"{mirror.TrimEnd('/')}/{Path.GetFileName(path)}";
        print?.Invoke($"CLIP {model}: {path} is missing; downloading {url} …");
        try { HttpStreams.Download(url, path, print, timeouts, sha256); }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            throw new UserInputException($"CLIP {model}: the weights file {path} is missing and could not be downloaded from {url} " +
                                         $"({e.Message}); put the file there (or in $DALLE2_WEIGHTS_DIR)", e);
        }
        return path;
    }

    /// <summary>Name → tensor from any of the formats, open_clip's "state_dict" / "module." wrappings removed.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        Dictionary<string, Tensor> tensors;
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) tensors = SafeTensors.Load(path);
        else if (IsTorchScript(path)) tensors = TorchFiles.LoadTorchScriptTensors(path);
        else
        {
            var table = TorchFiles.LoadStateDict(path);
            tensors = table.Keys.Cast<object>().Where(k => table[k] is Tensor).ToDictionary(k => (string)k, k => (Tensor)table[k]!);
        }
        return tensors.ToDictionary(kv => kv.Key.StartsWith("module.", StringComparison.Ordinal) ? kv.Key["module.".Length..] : kv.Key,
            kv => kv.Value);
    }

    /// <summary>A zip whose archive folder has code/ (torch.jit.save) rather than only data.pkl and data/ (torch.save).</summary>
    private static bool IsTorchScript(string path)
    {
        try
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            return zip.Entries.Any(e => e.FullName.Split('/') is [_, "code", ..]) || zip.Entries.Any(e => e.FullName.EndsWith("/constants.pkl"));
        }
        catch (InvalidDataException) { return false; }
    }

    /// <summary>A CLIP model with the weights of <paramref name="path"/>: shapes give the hyperparameters; every weight must be used.</summary>
    public static ClipModel Build(string path, bool quickGelu = true)
    {
        var tensors = Load(path);
        var hp = ClipHyperparameters.Infer(tensors, path);
        var model = new ClipModel(hp, quickGelu);
        var expected = model.state_dict();
        var missing = expected.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new UserInputException($"{path}: CLIP weights missing: {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? " …" : "")}");
        using (no_grad())
            foreach (var (key, target) in expected)
            {
                var source = tensors[key];
                if (!source.shape.SequenceEqual(target.shape))
                    throw new UserInputException($"{path}: {key} has shape [{string.Join(", ", source.shape)}], " +
                                                 $"the inferred model expects [{string.Join(", ", target.shape)}]");
                target.copy_(source.to(target.dtype));
            }
        foreach (var t in tensors.Values) t.Dispose();
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        return model;
    }
}

/// <summary>The safetensors format: an 8-byte little-endian header size, a JSON header of dtype/shape/offsets, then the bytes.</summary>
internal static class SafeTensors
{
    /// <summary>Header sizes above this are not a weights file.</summary>
    private const long MaxHeaderBytes = 100L << 20;

    public static Dictionary<string, Tensor> Load(string path)
    {
        using var stream = File.OpenRead(path);
        var lengthBytes = new byte[8];
        stream.ReadExactly(lengthBytes);
        long headerLength = BitConverter.ToInt64(lengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || headerLength > stream.Length - 8)
            throw new UserInputException($"{path}: safetensors header of {headerLength} bytes is not plausible");
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataStart = 8 + headerLength, dataLength = stream.Length - dataStart;
        using var doc = JsonDocument.Parse(header);
        var result = new Dictionary<string, Tensor>();
        foreach (var entry in doc.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__") continue;
            var dtype = entry.Value.GetProperty("dtype").GetString() switch
            {
                "F32" => (ScalarType.Float32, 4), "F16" => (ScalarType.Float16, 2), "BF16" => (ScalarType.BFloat16, 2),
                "F64" => (ScalarType.Float64, 8), "I64" => (ScalarType.Int64, 8), "I32" => (ScalarType.Int32, 4),
                var other => throw new UserInputException($"{path}: {entry.Name} has unsupported dtype {other}"),
            };
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            long count = shape.Aggregate(1L, (a, b) => checked(a * b));
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] > dataLength || offsets[1] - offsets[0] != checked(count * dtype.Item2))
                throw new UserInputException($"{path}: {entry.Name}'s offsets do not match its shape and the file's size");
            var bytes = new byte[offsets[1] - offsets[0]];
            stream.Position = dataStart + offsets[0];
            stream.ReadExactly(bytes);
            var t = empty(shape, dtype.Item1);
            t.bytes = bytes;
            result[entry.Name] = t;
        }
        return result;
    }
}
