namespace Dalle2Sharp.Config;

/// <summary>The train section. Per-unet options take one value for every unet or a list with one per unet.</summary>
public sealed class TrainConfig : ConfigSection
{
    [Key("epochs", "Number of epochs.")]
    public int Epochs { get; set; } = 20;

    [Key("lr", "Learning rate (≤ 0.01): one value or one per unet.")]
    public ScalarOrList<double> Lr { get; set; } = 1e-4;

    [Key("wd", "AdamW weight decay on ≥2-D parameters (0 = Adam): one value or one per unet.")]
    public ScalarOrList<double> Wd { get; set; } = 0.01;

    [Key("warmup_steps", "Linear learning-rate warmup steps (null = none): one value or one per unet.")]
    public ScalarOrList<int?>? WarmupSteps { get; set; }

    [Key("find_unused_parameters", "torch DistributedDataParallel option, no counterpart here: data-parallel runs (MPI) average the " +
                                   "gradients of the parameters the first backward reached, as upstream's unused ones never step.")]
    public bool FindUnusedParameters { get; set; } = true;

    [Key("static_graph", "torch DistributedDataParallel option, no counterpart here: the gradient layout is fixed after the " +
                         "first backward in every data-parallel (MPI) run.")]
    public bool StaticGraph { get; set; } = true;

    [Key("max_grad_norm", "Gradient-norm clipping: one value or one per unet (upstream: one global value).")]
    public ScalarOrList<double> MaxGradNorm { get; set; } = 0.5;

    [Key("save_every_n_samples", "Save a checkpoint and sample grid every this many training samples.")]
    public long SaveEveryNSamples { get; set; } = 100000;

    [Key("n_sample_images", "Images in each sample grid (train and test).")]
    public int NSampleImages { get; set; } = 6;

    [Key("cond_scale", "Classifier-free guidance scale when sampling: one value or one per unet (upstream ignores it; we honour it).")]
    public ScalarOrList<double> CondScale { get; set; } = 1.0;

    [Key("device", "Device: cpu, cuda or cuda:N.")]
    public string Device { get; set; } = "cuda:0";

    [Key("epoch_samples", "Training samples per epoch (null = the whole training split).")]
    public long? EpochSamples { get; set; }

    [Key("validation_samples", "Validation samples per epoch (null = the whole validation split).")]
    public long? ValidationSamples { get; set; }

    [Key("save_immediately", "Save a checkpoint at the first step of each epoch.")]
    public bool SaveImmediately { get; set; }

    [Key("use_ema", "Keep EMA weights and sample with them.")]
    public bool UseEma { get; set; } = true;

    [Key("ema_beta", "EMA decay. Upstream's code default is 0.999 (its README says 0.99); we follow the code.")]
    public double EmaBeta { get; set; } = 0.999;

    [Key("amp", "Mixed precision: trained unets compute in bfloat16 with float32 master weights and moments; checkpoints stay " +
                "float32 (upstream accepts the option and ignores it).")]
    public bool Amp { get; set; }

    [Key("unet_training_mask", "Which unets to train, one flag per unet (null = all).")]
    public List<bool>? UnetTrainingMask { get; set; }
}
