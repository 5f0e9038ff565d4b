namespace Dalle2Sharp.Config;

/// <summary>The tracker section: where run data lives, how it is logged, loaded and saved.</summary>
public sealed class TrackerConfig : ConfigSection
{
    [Key("data_path", "Folder for run data (checkpoints, metrics, samples). " +
        "Upstream's config default is .tracker_data (its README says ./.tracker-data); we follow the config.")]
    public string DataPath { get; set; } = ".tracker_data";

    [Key("overwrite_data_path", "Reuse data_path if it already exists " +
        "(as upstream: nothing in it is deleted; our own files are replaced as they are written). " +
        "Without it an existing, non-empty data_path is an error unless resuming.")]
    public bool OverwriteDataPath { get; set; }

    [Key("log", "Logging."), Required]
    public TrackerLogConfig Log { get; set; } = new();

    [Key("load", "Resuming from a checkpoint (null or load_from null = start fresh).")]
    public TrackerLoadConfig? Load { get; set; }

    [Key("save", "One saver or a list of savers."), Required, SingleOrList]
    public List<TrackerSaveConfig> Save { get; set; } = [];
}

public sealed class TrackerLogConfig : ConfigSection
{
    [Key("log_type", "Logger: console, wandb (Weights & Biases; WANDB_API_KEY, WANDB_BASE_URL, WANDB_MODE) " +
                     "or tensorboard (event files under data_path/tensorboard)."), OneOf("console", "wandb", "tensorboard")]
    public string LogType { get; set; } = "console";

    [Key("resume", "Resume the logger's run (wandb).")]
    public bool Resume { get; set; }

    [Key("auto_resume", "Resume automatically from the last checkpoint recorded in data_path.")]
    public bool AutoResume { get; set; }

    [Key("verbose", "Also print what is logged.")]
    public bool Verbose { get; set; }

    [Key("wandb_entity", "Weights & Biases entity."), OnlyFor("log_type", "wandb")]
    public string? WandbEntity { get; set; }

    [Key("wandb_project", "Weights & Biases project."), OnlyFor("log_type", "wandb")]
    public string? WandbProject { get; set; }

    [Key("wandb_run_name", "Weights & Biases run name."), OnlyFor("log_type", "wandb")]
    public string? WandbRunName { get; set; }

    [Key("wandb_run_id", "Weights & Biases run id: the run to resume, or the id of the new run."), OnlyFor("log_type", "wandb")]
    public string? WandbRunId { get; set; }
}

public sealed class TrackerLoadConfig : ConfigSection
{
    [Key("load_from", "Where to load a checkpoint from (null = start fresh)."), OneOf("local", "url", "wandb")]
    public string? LoadFrom { get; set; }

    [Key("only_auto_resume", "Load only when auto-resuming.")]
    public bool OnlyAutoResume { get; set; }

    [Key("file_path", "Local checkpoint file."), OnlyFor("load_from", "local")]
    public string? FilePath { get; set; }

    [Key("url", "http(s) or s3:// URL of a checkpoint (the Hugging Face token is sent to Hub URLs)."), OnlyFor("load_from", "url")]
    public string? Url { get; set; }

    [Key("wandb_file_path", "File path inside the wandb run."), OnlyFor("load_from", "wandb")]
    public string? WandbFilePath { get; set; }

    [Key("wandb_run_path", "wandb run path entity/project/run_id."), OnlyFor("load_from", "wandb")]
    public string? WandbRunPath { get; set; }
}

public sealed class TrackerSaveConfig : ConfigSection
{
    [Key("save_to", "Destination kind."), OneOf("local", "wandb", "huggingface")]
    public string SaveTo { get; set; } = "local";

    [Key("save_latest_to", "Path template of the latest checkpoint ({epoch}, {sample}, ... are filled in).")]
    public string? SaveLatestTo { get; set; }

    [Key("save_best_to", "Path template of the best checkpoint (lowest validation loss).")]
    public string? SaveBestTo { get; set; }

    [Key("save_meta_to", "Folder for the config and run metadata.")]
    public string? SaveMetaTo { get; set; }

    [Key("save_type", "checkpoint (everything to resume) or model (EMA weights only)."), OneOf("checkpoint", "model")]
    public string SaveType { get; set; } = "checkpoint";

    [Key("save_all", "Accepted for compatibility; upstream ignores it.")]
    public bool SaveAll { get; set; }

    [Key("save_latest", "Accepted for compatibility; upstream ignores it.")]
    public bool SaveLatest { get; set; } = true;

    [Key("save_best", "Accepted for compatibility; upstream ignores it.")]
    public bool SaveBest { get; set; } = true;

    [Key("wandb_run_path", "wandb run to save to (null = the logger's run)."), OnlyFor("save_to", "wandb")]
    public string? WandbRunPath { get; set; }

    [Key("huggingface_repo", "Hugging Face model repository owner/name (created if missing)."), OnlyFor("save_to", "huggingface")]
    public string? HuggingfaceRepo { get; set; }

    [Key("token_path", "File holding the Hugging Face token (else HF_TOKEN, or the token file of `huggingface-cli login`)."),
        OnlyFor("save_to", "huggingface")]
    public string? TokenPath { get; set; }
}
