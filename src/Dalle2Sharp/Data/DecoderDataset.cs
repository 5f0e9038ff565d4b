using System.Globalization;
using System.Text;
using Dalle2Sharp.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Data;

/// <summary>One training example: the preprocessed image [3, H, W] in [0, 1], its embeddings and caption.</summary>
public sealed record DecoderSample(Tensor Image, float[]? ImageEmbedding, NpyArray? TextEncoding, string Caption, string Key, long Shard);

/// <summary>
/// Turns one webdataset shard into decoder samples: streams the tar, joins each sample with its
/// embedding rows, decodes and preprocesses the image. Bad data is reported to <see cref="DataIssues"/>
/// with shard and key and skipped.
/// </summary>
public sealed class DecoderDataset
{
    private readonly DataConfig _config;
    private readonly ImageTransforms _transforms;
    private readonly EmbeddingStore? _imageEmbeddings;
    private readonly EmbeddingStore? _textEmbeddings;
    private readonly bool _requireImageEmbedding;
    private readonly Runtime.IoTimeouts _timeouts;
    private readonly long? _imageEmbedDim;
    public DataIssues Issues { get; }

    /// <param name="imageEmbedDim">The decoder's image_embed_dim: embedding files of another width are a clear error, not a native crash.</param>
    public DecoderDataset(DataConfig config, DataIssues issues, bool requireImageEmbedding = true, long? imageEmbedDim = null)
    {
        _imageEmbedDim = imageEmbedDim;
        _config = config;
        Issues = issues;
        _transforms = new ImageTransforms(config.Preprocessing, config.ReducedDecode, config.MaxImagePixels);
        _timeouts = config.Timeouts;
        _imageEmbeddings = config.ImgEmbeddingsUrl is { } img ? new EmbeddingStore(img, _timeouts) : null;
        _textEmbeddings = config.TextEmbeddingsUrl is { } text ? new EmbeddingStore(text, _timeouts) : null;
        _requireImageEmbedding = requireImageEmbedding;
    }

    /// <summary>False (and reported) when an embedding folder has no file for the shard: upstream skips such shards.</summary>
    public bool HasEmbeddingsFor(Shard shard)
    {
        foreach (var (store, what) in new[] { (_imageEmbeddings, "image"), (_textEmbeddings, "text") })
        {
            if (store is not null && !store.HasShard(shard.Number))
            {
                Issues.Report(DataIssueKind.MissingEmbeddingFile, shard.Url, null,
                    $"no {what} embedding file {Path.GetFileName(store.FileFor(shard.Number))}; shard skipped");
                return false;
            }
        }
        return true;
    }

    /// <summary>The shard's samples in tar order; <paramref name="generator"/> drives the random transforms.</summary>
    public IEnumerable<DecoderSample> ReadShard(Shard shard, Generator generator, CancellationToken cancel = default)
    {
        if (!HasEmbeddingsFor(shard)) yield break;
        NpyArray? imageRows = null, textRows = null;
        Stream? stream = null;
        try
        {
            imageRows = _imageEmbeddings?.Load(shard.Number);
            if (imageRows is not null && _imageEmbedDim is { } width && imageRows.RowLength != width)
                throw new UserInputException($"{_imageEmbeddings!.FileFor(shard.Number)}: embeddings are {imageRows.RowLength} wide, " +
                                             $"decoder.unets[0].image_embed_dim is {width}");
            textRows = _textEmbeddings?.Load(shard.Number);
            stream = Runtime.Storage.OpenRead(shard.Url, _timeouts);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or HttpRequestException)
        {
            Issues.Report(e is InvalidDataException ? DataIssueKind.MissingEmbeddingFile : DataIssueKind.ShardUnreadable, shard.Url, null, e.Message);
            stream?.Dispose();
            yield break;
        }

        foreach (var raw in WebDatasetReader.Read(stream, shard.Url, Issues))
        {
            if (cancel.IsCancellationRequested) yield break;
            var sample = Prepare(raw, shard, imageRows, textRows, generator);
            if (sample is not null) yield return sample;
        }
        _imageEmbeddings?.Release(shard.Number);
        _textEmbeddings?.Release(shard.Number);
    }

    private DecoderSample? Prepare(WebDatasetSample raw, Shard shard, NpyArray? imageRows, NpyArray? textRows, Generator generator)
    {
        string? imageExt = ImageDecoder.Extensions.FirstOrDefault(raw.Files.ContainsKey);
        if (imageExt is null) { Issues.Report(DataIssueKind.MissingImage, shard.Url, raw.Key, "no jpg/png/webp file"); return null; }
        if (!raw.Files.TryGetValue("txt", out var captionBytes))
        {
            Issues.Report(DataIssueKind.MissingCaption, shard.Url, raw.Key, "no txt file");
            return null;
        }

        float[]? imageEmbedding = null;
        NpyArray? textEncoding = null;
        if (imageRows is not null || textRows is not null)
        {
            if (!ShardSpec.TryRowIndex(raw.Key, _config.IndexWidth, out long row))
            {
                Issues.Report(DataIssueKind.BadKey, shard.Url, raw.Key, $"the last {_config.IndexWidth} characters of the key are not a row number");
                return null;
            }
            if (imageRows is not null && (imageEmbedding = Row(imageRows, row, shard, raw.Key, "image")) is null) return null;
            if (textRows is not null)
            {
                var text = Row(textRows, row, shard, raw.Key, "text");
                if (text is null) return null;
                textEncoding = textRows.Shape.Length >= 3
                    ? new NpyArray(textRows.Shape[1..], text)
                    : new NpyArray([text.Length], text);
            }
        }
        else if (raw.Files.TryGetValue("npy", out var npyBytes))
        {
            try { imageEmbedding = Npy.Read(new MemoryStream(npyBytes)).Data; }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException)
            {
                Issues.Report(DataIssueKind.MissingEmbeddingFile, shard.Url, raw.Key, $"unreadable .npy member: {e.Message}");
                return null;
            }
        }
        if (imageEmbedding is null && _requireImageEmbedding)
        {
            Issues.Report(DataIssueKind.MissingEmbeddingFile, shard.Url, raw.Key,
                "no image embedding (no img_embeddings_url and no .npy in the sample)");
            return null;
        }

        Tensor image;
        try
        {
            image = _transforms.Apply(raw.Files[imageExt], generator);
        }
        catch (ImageTooLargeException e)
        {
            Issues.Report(DataIssueKind.ImageTooLarge, shard.Url, raw.Key, e.Message);
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
        {
            // Whatever one sample throws is that sample's problem: reported with shard and key, never the end of the run.
            Issues.Report(DataIssueKind.CorruptImage, shard.Url, raw.Key,
                e is InvalidDataException or ArgumentException ? e.Message : $"{e.Message} ({e.GetType().Name})");
            return null;
        }
        string caption = Encoding.UTF8.GetString(captionBytes).Trim();
        return new DecoderSample(image, imageEmbedding, textEncoding, caption, raw.Key, shard.Number);
    }

    private float[]? Row(NpyArray rows, long row, Shard shard, string key, string what)
    {
        if (row >= rows.Rows)
        {
            Issues.Report(DataIssueKind.EmbeddingRowOutOfRange, shard.Url, key,
                $"row {row} is beyond the {rows.Rows} rows of the {what} embedding file");
            return null;
        }
        var values = rows.Row(row);
        bool allZero = true;
        foreach (var v in values) if (v != 0) { allZero = false; break; }
        if (allZero)
        {
            Issues.Report(DataIssueKind.ZeroEmbedding, shard.Url, key, $"the {what} embedding row {row} is all zeros (no embedding for this sample)");
            return null;
        }
        return values.ToArray();
    }
}
