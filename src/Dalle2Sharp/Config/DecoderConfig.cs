using System.Text.Json.Nodes;

namespace Dalle2Sharp.Config;

/// <summary>
/// The decoder section: the cascade of unets and every Decoder constructor argument of
/// DALLE2-pytorch (upstream passes extra keys through to the constructor).
/// </summary>
public sealed class DecoderConfig : ConfigSection
{
    public static readonly string[] LossTypes = ["l1", "l2", "huber"];
    public static readonly string[] BetaSchedules = ["cosine", "linear", "quadratic", "jsd", "sigmoid"];

    [Key("unets", "The cascade, smallest image size first."), Required]
    public List<UnetConfig> Unets { get; set; } = [];

    [Key("image_sizes", "Output size of each unet, increasing, one per unet. Give this or image_size.")]
    public List<int>? ImageSizes { get; set; }

    [Key("image_size", "A single image size (only with one unet). Upstream rejects giving both image_size and image_sizes; so do we.")]
    public int? ImageSize { get; set; }

    [Key("clip", "CLIP used to embed images/text on the fly instead of precomputed embeddings.")]
    public ClipConfig? Clip { get; set; }

    [Key("channels", "Image channels.")]
    public int Channels { get; set; } = 3;

    [Key("timesteps", "Diffusion steps T of every unet's noise schedule.")]
    public int Timesteps { get; set; } = 1000;

    [Key("sample_timesteps", "Sampling steps: null = full ancestral DDPM; fewer than timesteps = DDIM. One value or one per unet.")]
    public ScalarOrList<int?>? SampleTimesteps { get; set; }

    [Key("sampler", "Sampler: auto (upstream's rule: ancestral DDPM, or DDIM when sample_timesteps < timesteps), ddpm, ddim, " +
                    "or dpmpp (DPM-Solver++(2M), sample_timesteps steps, default 25). One value or one per unet."),
     OneOf("auto", "ddpm", "ddim", "dpmpp")]
    public ScalarOrList<string> Sampler { get; set; } = "auto";

    [Key("loss_type", "Diffusion loss."), OneOf("l1", "l2", "huber")]
    public string LossType { get; set; } = "l2";

    [Key("beta_schedule", "Noise schedule, one for all unets or one per unet. null = cosine, and linear for the last unet when " +
                          "there are several (upstream's behaviour)."),
     OneOf("cosine", "linear", "quadratic", "jsd", "sigmoid")]
    public ScalarOrList<string>? BetaSchedule { get; set; }

    /// <summary>Each unet's beta schedule: as configured, else upstream's default (cosine; linear for the last of several unets).</summary>
    public IReadOnlyList<string> BetaSchedulePerUnet(int numUnets) =>
        BetaSchedule?.Expand(numUnets)
        ?? Enumerable.Range(0, numUnets).Select(i => numUnets > 1 && i == numUnets - 1 ? "linear" : "cosine").ToArray();

    [Key("learned_variance", "Learn the variance (hybrid VLB loss). As upstream, a single true applies to the first unet only; " +
                             "give a list to choose per unet.")]
    public ScalarOrList<bool> LearnedVariance { get; set; } = true;

    [Key("learned_variance_constrain_frac", "Pass the variance interpolation fraction through a sigmoid.")]
    public bool LearnedVarianceConstrainFrac { get; set; }

    [Key("vb_loss_weight", "Weight of the VLB term with learned variance.")]
    public double VbLossWeight { get; set; } = 0.001;

    [Key("image_cond_drop_prob", "Probability of dropping the image embedding in training (classifier-free guidance).")]
    public double ImageCondDropProb { get; set; } = 0.1;

    [Key("text_cond_drop_prob", "Probability of dropping the text encodings in training (classifier-free guidance).")]
    public double TextCondDropProb { get; set; } = 0.5;

    [Key("predict_x_start", "Predict x0 instead of the noise: one value or one per unet.")]
    public ScalarOrList<bool> PredictXStart { get; set; } = false;

    [Key("predict_v", "Predict v (takes precedence over predict_x_start): one value or one per unet.")]
    public ScalarOrList<bool> PredictV { get; set; } = false;

    [Key("predict_x_start_for_latent_diffusion", "Predict x0 exactly for the unets that have a VQGAN-VAE.")]
    public bool PredictXStartForLatentDiffusion { get; set; }

    [Key("random_crop_sizes", "Per-unet random crop size in training (null entries = no crop; the first must be null).")]
    public List<int?>? RandomCropSizes { get; set; }

    [Key("use_noise_for_lowres_cond", "Noise-augment the low-res conditioning image (one value or one per upsampler).")]
    public ScalarOrList<bool> UseNoiseForLowresCond { get; set; } = false;

    [Key("use_blur_for_lowres_cond", "Blur-augment the low-res conditioning image (one value or one per upsampler).")]
    public ScalarOrList<bool> UseBlurForLowresCond { get; set; } = true;

    [Key("lowres_downsample_first", "Downsample the image to the previous unet's size before blurring.")]
    public bool LowresDownsampleFirst { get; set; } = true;

    [Key("blur_prob", "Probability of blurring the low-res conditioning image per batch.")]
    public double BlurProb { get; set; } = 0.5;

    [Key("blur_sigma", "Blur sigma, or [low, high] to draw it uniformly per batch.")]
    public ScalarOrList<double> BlurSigma { get; set; } = 0.6;

    [Key("blur_kernel_size", "Blur kernel size, or [low, high] to draw it per batch.")]
    public ScalarOrList<int> BlurKernelSize { get; set; } = 3;

    [Key("lowres_noise_sample_level", "Noise level of the low-res conditioning image when sampling.")]
    public double LowresNoiseSampleLevel { get; set; } = 0.2;

    [Key("clip_denoised", "Clamp predicted x0 to [-1, 1] while sampling.")]
    public bool ClipDenoised { get; set; } = true;

    [Key("clip_x_start", "Accepted for compatibility; upstream never uses it.")]
    public bool ClipXStart { get; set; } = true;

    [Key("clip_adapter_overrides", "Overrides passed to an x-clip / CoCa adapter.")]
    public JsonObject? ClipAdapterOverrides { get; set; }

    [Key("unconditional", "No image or text conditioning at all.")]
    public bool Unconditional { get; set; }

    [Key("auto_normalize_img", "Images are given in [0, 1] and mapped to [-1, 1] internally.")]
    public bool AutoNormalizeImg { get; set; } = true;

    [Key("use_dynamic_thres", "Imagen's dynamic thresholding while sampling.")]
    public bool UseDynamicThres { get; set; }

    [Key("dynamic_thres_percentile", "Percentile of dynamic thresholding.")]
    public double DynamicThresPercentile { get; set; } = 0.95;

    [Key("p2_loss_weight_gamma", "P2 loss reweighting gamma (0 = off): one value or one per unet.")]
    public ScalarOrList<double> P2LossWeightGamma { get; set; } = 0.0;

    [Key("p2_loss_weight_k", "P2 loss reweighting k.")]
    public double P2LossWeightK { get; set; } = 1;

    [Key("ddim_sampling_eta", "Eta of DDIM sampling (0 = deterministic).")]
    public double DdimSamplingEta { get; set; }
}

/// <summary>CLIP used by the decoder to embed images (and text) during training.</summary>
public sealed class ClipConfig : ConfigSection
{
    [Key("make", "Which CLIP implementation."), OneOf("openai", "open_clip", "x-clip", "coca")]
    public string Make { get; set; } = "openai";

    [Key("model", "Model name.")]
    public string Model { get; set; } = "ViT-L/14";

    [Key("base_model_kwargs", "Extra arguments for the CLIP model.")]
    public JsonObject? BaseModelKwargs { get; set; }
}
