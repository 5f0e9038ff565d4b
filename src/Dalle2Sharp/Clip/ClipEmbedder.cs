using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Dalle2Sharp.Clip;

/// <summary>
/// DALLE2-pytorch's OpenAIClipAdapter: images resized to CLIP's input size with resize-right (as its
/// resize_image_to), normalised with CLIP's mean and std, encoded and l2-normalised; text truncated to
/// the context, encoded, with the per-token states (ln_final's output) kept up to and including the
/// first end-of-text token and zero elsewhere. CLIP is frozen: no gradients, never saved with the decoder.
/// </summary>
public sealed class ClipEmbedder : IDisposable
{
    /// <summary>CLIP's image normalisation (clip.py _transform).</summary>
    public static readonly double[] Mean = [0.48145466, 0.4578275, 0.40821073], Std = [0.26862954, 0.26130258, 0.27577711];

    public ClipModel Model { get; }

    /// <summary>CLIP's own image preprocessing (clip.py _transform): bicubic resize of the shorter side, centre crop, to tensor.</summary>
    public Config.PreprocessingConfig Preprocessing()
    {
        var p = new Config.PreprocessingConfig();
        p.Steps.Add(new Config.ResizeConfig { Size = ImageSize, Interpolation = "bicubic" });
        p.Steps.Add(new Config.CenterCropConfig { Size = ImageSize });
        p.Steps.Add(new Config.ToTensorConfig());
        return p;
    }

    public ClipEmbedder(ClipModel model) => Model = model;

    /// <summary>CLIP's input resolution (the adapter's image_size).</summary>
    public int ImageSize => Model.ImageResolution;

    /// <summary>The embedding width (text_projection's output).</summary>
    public int EmbedDim => Model.Hyperparameters.EmbedDim;

    /// <summary>The per-token encoding width (the adapter's dim_latent: ln_final's width).</summary>
    public int TextWidth => Model.Hyperparameters.TransformerWidth;

    public int MaxTextLength => Model.ContextLength;

    /// <summary>Images in [0, 1], [B, 3, H, W] with H ≥ CLIP's size → l2-normalised image embeddings [B, embed_dim] (float32).</summary>
    public Tensor EmbedImage(Tensor images)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long size = images.shape[^1];
        if (size < ImageSize)
            throw new UserInputException($"images of {size} px are smaller than CLIP's input size {ImageSize}: CLIP needs at least that " +
                                         "(preprocess the data to a larger size)");
        var x = size == ImageSize ? images.to(float32) : Models.ResizeRight.Resize(images.to(float32), ImageSize);
        var mean = tensor(Mean, dtype: float32, device: x.device).view(1, 3, 1, 1);
        var std = tensor(Std, dtype: float32, device: x.device).view(1, 3, 1, 1);
        var embed = Model.EncodeImage((x - mean) / std).to(float32);
        return F.normalize(embed, dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>Token ids [B, L] → (l2-normalised text embeddings [B, embed_dim], masked per-token encodings [B, min(L, context), width]).</summary>
    public (Tensor Embed, Tensor Encodings) EmbedText(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (tokens.shape[^1] > MaxTextLength) tokens = tokens[.., ..MaxTextLength];
        // Positions before the first end-of-text token, shifted by one so the token itself is kept; padding (0) never.
        var beforeEos = tokens.eq(ClipTokenizer.EndOfText).cumsum(-1).eq(0);
        var shifted = cat([ones(tokens.shape[0], 1, ScalarType.Bool, tokens.device), beforeEos[.., ..^1]], -1);   // F.pad(…, (1, -1), True)
        var mask = shifted.logical_and(tokens.ne(0));
        var (embed, states) = Model.EncodeTextWithStates(tokens);
        var encodings = states.to(float32).masked_fill(mask.logical_not().unsqueeze(-1), 0);
        return (F.normalize(embed.to(float32), dim: -1).MoveToOuterDisposeScope(), encodings.MoveToOuterDisposeScope());
    }

    public void Dispose() => Model.Dispose();
}
