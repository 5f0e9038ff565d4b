namespace Dalle2Sharp.Config;

/// <summary>
/// The decoder training config — DALLE2-pytorch's TrainDecoderConfig, our public interface.
/// Load it with <see cref="ConfigLoader"/>, which binds and validates it.
/// </summary>
public sealed class TrainDecoderConfig : ConfigSection
{
    [Key("seed", "Seed of every random number generator (model init, data split and order, sampling).")]
    public long Seed { get; set; }

    [Key("decoder", "The decoder: its cascade of unets and diffusion settings."), Required]
    public DecoderConfig Decoder { get; set; } = new();

    [Key("data", "Training data."), Required]
    public DataConfig Data { get; set; } = new();

    [Key("train", "Optimisation and the training loop."), Required]
    public TrainConfig Train { get; set; } = new();

    [Key("evaluate", "Metrics computed each epoch."), Required]
    public EvaluateConfig Evaluate { get; set; } = new();

    [Key("tracker", "Logging, loading and saving."), Required]
    public TrackerConfig Tracker { get; set; } = new();
}
