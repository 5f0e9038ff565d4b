namespace Dalle2Sharp.Config;

/// <summary>The data section: webdataset shards, embedding folders, splits and preprocessing.</summary>
public sealed class DataConfig : ConfigSection
{
    [Key("webdataset_base_url",
        "Shard location with {} where the zero-padded shard number goes: a path, file://, http(s):// or pipe:COMMAND."), Required]
    public string WebdatasetBaseUrl { get; set; } = "";

    [Key("img_embeddings_url", "Folder of img_emb_<shard>.npy files (precomputed CLIP image embeddings).")]
    public string? ImgEmbeddingsUrl { get; set; }

    [Key("text_embeddings_url", "Folder of text_emb_<shard>.npy files (precomputed CLIP text encodings).")]
    public string? TextEmbeddingsUrl { get; set; }

    [Key("num_workers", "Parallel decode workers.")]
    public int NumWorkers { get; set; } = 4;

    [Key("batch_size", "Batch size.")]
    public int BatchSize { get; set; } = 64;

    [Key("start_shard", "First shard number (inclusive).")]
    public long StartShard { get; set; }

    [Key("end_shard", "Last shard number (inclusive).")]
    public long EndShard { get; set; } = 9999999;

    [Key("shard_width", "Digits of the zero-padded shard number in the tar name.")]
    public int ShardWidth { get; set; } = 6;

    [Key("index_width", "The last index_width digits of a sample key are its row in the embedding file.")]
    public int IndexWidth { get; set; } = 4;

    [Key("splits", "Fractions of shards for train / val / test (must sum to 1). Upstream's config requires it; we default it as its README says.")]
    public SplitsConfig Splits { get; set; } = new();

    [Key("shuffle_train", "Shuffle the order of training shards.")]
    public bool ShuffleTrain { get; set; } = true;

    [Key("resample_train", "Draw training shards with replacement, endlessly (needs shuffle_train false and train.epoch_samples).")]
    public bool ResampleTrain { get; set; }

    [Key("preprocessing", "Image transforms applied in the order given: " +
        "RandomResizedCrop, RandomHorizontalFlip, Resize, CenterCrop, ToTensor. " +
        "A transform set to false is left out (upstream applies it anyway).")]
    public PreprocessingConfig Preprocessing { get; set; } = PreprocessingConfig.Default();

    [Key("reduced_decode", "Ours: when preprocessing starts with RandomResizedCrop or Resize, " +
        "decode a JPEG at 1/2, 1/4 or 1/8 size (in the DCT) as long as the crop stays at least as large as the output; " +
        "same crops, several times faster on large photos. false decodes full size, as upstream.")]
    public bool ReducedDecode { get; set; } = true;

    [Key("max_image_pixels", "Ours: images with more pixels (width × height from the header) are skipped with a warning before decoding. " +
        "The default is Pillow's decompression-bomb limit (89,478,485; Pillow warns above it and refuses above twice it). " +
        "0 = no limit (buffers are still size-checked).")]
    public long MaxImagePixels { get; set; } = DefaultMaxImagePixels;

    [Key("connect_timeout", "Ours: seconds to wait for an http(s) connection and its response headers (shards, embeddings); " +
        "retried 3 times with backoff.")]
    public double ConnectTimeout { get; set; } = 30;

    [Key("stall_timeout", "Ours: seconds an http(s) transfer or a pipe: command may go without producing a byte before it is reported " +
        "(and retried / resumed for http). A whole transfer has no time limit.")]
    public double StallTimeout { get; set; } = 120;

    /// <summary>The read timeouts of the data sources.</summary>
    public Runtime.IoTimeouts Timeouts => new(TimeSpan.FromSeconds(ConnectTimeout), TimeSpan.FromSeconds(StallTimeout));

    /// <summary>Pillow's Image.MAX_IMAGE_PIXELS.</summary>
    public const long DefaultMaxImagePixels = 89_478_485;
}

public sealed class SplitsConfig : ConfigSection
{
    [Key("train", "Fraction of shards for training.")]
    public double Train { get; set; } = 0.75;

    [Key("val", "Fraction of shards for validation.")]
    public double Val { get; set; } = 0.15;

    [Key("test", "Fraction of shards for testing.")]
    public double Test { get; set; } = 0.1;
}
