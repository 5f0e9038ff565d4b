using System.Diagnostics;
using TorchSharp;
using Dalle2Sharp.Config;
using Dalle2Sharp.Data;
using static TorchSharp.torch;

namespace Dalle2Sharp.Clip;

/// <summary>
/// decoder.clip in training: each batch's image embeddings (and per-token text encodings, when a unet
/// conditions on text) computed by a frozen CLIP on the training device, as upstream's train_decoder.py
/// does when no precomputed embeddings are given. CLIP is not part of the decoder: never trained, never saved.
/// </summary>
public sealed class ClipStage : IDisposable
{
    private readonly ClipEmbedder _embedder;
    private readonly Device _device;
    private readonly bool _text;
    private readonly Stopwatch _clock = new();
    private long _batches;

    private ClipStage(ClipEmbedder embedder, Device device, bool text) => (_embedder, _device, _text) = (embedder, device, text);

    /// <summary>
    /// CLIP for the config: OpenAI's models by name (their weights file found in <paramref name="weightsFolder"/> or
    /// downloaded), open_clip models as a weights file path (.bin, .pt, .safetensors). x-clip and coca are refused.
    /// </summary>
    public static ClipStage Start(DecoderConfig decoder, string weightsFolder, Device device, Action<string> print)
    {
        var clip = decoder.Clip!;
        string path = clip.Make switch
        {
            "openai" => ClipWeights.Locate(clip.Model, weightsFolder, print),
            "open_clip" => File.Exists(clip.Model) ? clip.Model
                : throw new UserInputException($"decoder.clip.model {clip.Model}: for make open_clip give the path of the model's weights file " +
                                               "(open_clip_pytorch_model.bin or .safetensors from its Hugging Face repo)"),
            _ => throw new UserInputException($"decoder.clip.make {clip.Make} is not supported (openai and open_clip are)"),
        };
        // OpenAI's models use QuickGELU; open_clip's own trainings use GELU unless named "-quickgelu".
        bool quickGelu = clip.Make == "openai" || clip.Model.Contains("quickgelu", StringComparison.OrdinalIgnoreCase);
        var model = ClipWeights.Build(path, quickGelu);
        model.to(device);
        var hp = model.Hyperparameters;
        print($"CLIP: {clip.Make} {clip.Model} from {path} ({hp.ImageResolution} px, embeddings {hp.EmbedDim}, text {hp.TransformerWidth} wide); " +
            $"frozen");
        return new ClipStage(new ClipEmbedder(model), device, decoder.Unets.Any(u => u.CondOnTextEncodings));
    }

    public ClipEmbedder Embedder => _embedder;

    /// <summary>The batch with CLIP's embeddings (on the training device) in place of missing precomputed ones.</summary>
    public DecoderBatch Embed(DecoderBatch batch)
    {
        _clock.Start();
        try
        {
            var images = batch.Images.to(_device);
            var imageEmbeddings = batch.ImageEmbeddings ?? _embedder.EmbedImage(images);
            var textEncodings = batch.TextEncodings;
            if (_text && textEncodings is null)
            {
                using var tokens = ClipTokenizer.Shared.Tokenize(batch.Captions, _embedder.MaxTextLength);
                var (_, encodings) = _embedder.EmbedText(tokens.to(_device));
                textEncodings = encodings;
            }
            _batches++;
            return batch with { ImageEmbeddings = imageEmbeddings, TextEncodings = textEncodings };
        }
        finally { _clock.Stop(); }
    }

    /// <summary>Mean milliseconds CLIP took per batch so far (logged with the training metrics).</summary>
    public double MillisecondsPerBatch => _batches == 0 ? 0 : _clock.Elapsed.TotalMilliseconds / _batches;

    public IEnumerable<DecoderBatch> Embed(IEnumerable<DecoderBatch> batches)
    {
        foreach (var batch in batches) yield return Embed(batch);
    }

    public void Dispose() => _embedder.Dispose();
}
