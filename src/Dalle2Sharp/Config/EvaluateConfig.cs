namespace Dalle2Sharp.Config;

/// <summary>The evaluate section: metrics with torchmetrics' options; a metric left null is not computed.</summary>
public sealed class EvaluateConfig : ConfigSection
{
    [Key("n_evaluation_samples", "Images generated for each evaluation.")]
    public int NEvaluationSamples { get; set; } = 1000;

    [Key("weights_dir", "Folder of the metric networks' weight files (null = $DALLE2_WEIGHTS_DIR, else ~/.cache/dalle2sharp/weights). " +
                        "Ours: upstream downloads them implicitly.")]
    public string? WeightsDir { get; set; }

    [Key("FID", "Fréchet Inception Distance (torchmetrics FrechetInceptionDistance options).")]
    public FidConfig? FID { get; set; }

    [Key("IS", "Inception Score (torchmetrics InceptionScore options), on the generated images.")]
    public InceptionScoreConfig? IS { get; set; }

    [Key("KID", "Kernel Inception Distance (torchmetrics KernelInceptionDistance options).")]
    public KidConfig? KID { get; set; }

    [Key("LPIPS", "Learned Perceptual Image Patch Similarity (torchmetrics options).")]
    public LpipsConfig? LPIPS { get; set; }
}

public sealed class FidConfig : ConfigSection
{
    [Key("feature", "Inception feature tap."), OneOf("64", "192", "768", "2048")]
    public int Feature { get; set; } = 2048;

    [Key("reset_real_features", "Recompute the real-image statistics at every evaluation.")]
    public bool ResetRealFeatures { get; set; } = true;

    [Key("normalize", "Inputs are floats in [0, 1] rather than uint8.")]
    public bool Normalize { get; set; }
}

public sealed class InceptionScoreConfig : ConfigSection
{
    [Key("feature", "Inception output used: logits_unbiased or a feature tap."), OneOf("logits_unbiased", "64", "192", "768", "2048"), AcceptNumber]
    public string Feature { get; set; } = "logits_unbiased";

    [Key("splits", "Number of splits the score is averaged over.")]
    public int Splits { get; set; } = 10;

    [Key("normalize", "Inputs are floats in [0, 1] rather than uint8.")]
    public bool Normalize { get; set; }
}

public sealed class KidConfig : ConfigSection
{
    [Key("feature", "Inception feature tap."), OneOf("64", "192", "768", "2048")]
    public int Feature { get; set; } = 2048;

    [Key("subsets", "Number of random subsets the MMD is averaged over.")]
    public int Subsets { get; set; } = 100;

    [Key("subset_size", "Samples per subset.")]
    public int SubsetSize { get; set; } = 1000;

    [Key("degree", "Degree of the polynomial kernel.")]
    public int Degree { get; set; } = 3;

    [Key("gamma", "Kernel gamma (null = 1 / feature dimension).")]
    public double? Gamma { get; set; }

    [Key("coef", "Kernel constant term.")]
    public double Coef { get; set; } = 1.0;

    [Key("reset_real_features", "Recompute the real-image features at every evaluation.")]
    public bool ResetRealFeatures { get; set; } = true;

    [Key("normalize", "Inputs are floats in [0, 1] rather than uint8.")]
    public bool Normalize { get; set; }
}

public sealed class LpipsConfig : ConfigSection
{
    [Key("net_type", "Backbone network."), OneOf("vgg", "alex", "squeeze")]
    public string NetType { get; set; } = "alex";

    [Key("reduction", "How per-image distances are combined."), OneOf("mean", "sum")]
    public string Reduction { get; set; } = "mean";

    [Key("normalize", "Inputs are in [0, 1] rather than [-1, 1].")]
    public bool Normalize { get; set; }
}
