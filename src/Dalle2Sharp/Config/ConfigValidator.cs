using System.Text.RegularExpressions;

namespace Dalle2Sharp.Config;

/// <summary>
/// Rules that span options (counts per unet, splits, embedding sources, ...). Each adds an error
/// with the JSON path it concerns; all errors are reported together.
/// </summary>
public static partial class ConfigValidator
{
    public static IReadOnlyList<ConfigError> Validate(TrainDecoderConfig config)
    {
        var errors = new List<ConfigError>();
        void Err(string path, string message) => errors.Add(new ConfigError(path, message));

        var decoder = config.Decoder;
        int n = decoder.Unets.Count;
        ValidateDecoder(decoder, Err);
        ValidateData(config.Data, Err);
        ValidateTrain(config.Train, n, Err);
        ValidateEvaluate(config.Evaluate, Err);
        ValidateTracker(config.Tracker, Err);
        ValidateEmbeddingSources(config, Err);
        ValidateClip(config.Decoder.Clip, Err);

        if (config.Train.EpochSamples is null && config.Data.ResampleTrain)
            Err("train.epoch_samples", "required when data.resample_train is true (resampling never ends an epoch by itself)");
        return errors;
    }

    private static void ValidateDecoder(DecoderConfig d, Action<string, string> err)
    {
        int n = d.Unets.Count;
        if (n == 0) err("decoder.unets", "must hold at least one unet");

        if (d.ImageSize is not null && d.ImageSizes is not null)
            err("decoder.image_size", "give image_size or image_sizes, not both");
        else if (d.ImageSize is null && d.ImageSizes is null)
            err("decoder.image_sizes", "required (or image_size for a single unet)");
        else if (d.ImageSizes is { } sizes)
        {
            if (sizes.Count != n) err("decoder.image_sizes", $"must have one size per unet ({n}), got {sizes.Count}");
            for (int i = 0; i < sizes.Count; i++)
            {
                if (sizes[i] <= 0) err($"decoder.image_sizes[{i}]", $"must be positive (got {sizes[i]})");
                else if (i > 0 && sizes[i] <= sizes[i - 1])
                    err($"decoder.image_sizes[{i}]", $"image sizes must increase along the cascade ({sizes[i - 1]} then {sizes[i]})");
            }
        }
        else if (d.ImageSize <= 0) err("decoder.image_size", $"must be positive (got {d.ImageSize})");
        else if (n > 1) err("decoder.image_size", $"a single image_size serves one unet; give image_sizes with {n} sizes");

        Positive(d.Channels, "decoder.channels", err);
        Positive(d.Timesteps, "decoder.timesteps", err);
        PerUnet(d.SampleTimesteps, n, "decoder.sample_timesteps", err);
        if (d.SampleTimesteps is not null)
            foreach (var (v, i) in d.SampleTimesteps.Values.Select((v, i) => (v as int?, i)))
                if (v is { } steps && (steps < 1 || steps > d.Timesteps))
                    err(ElementPath(d.SampleTimesteps, "decoder.sample_timesteps", i),
                        $"must be between 1 and timesteps ({d.Timesteps}), got {steps}");
        if (d.Timesteps == 1 && d.Sampler.Values.Any(v => v as string == "dpmpp"))
            err("decoder.sampler", "dpmpp needs timesteps ≥ 2 (its steps go between two timesteps), got timesteps 1");
        PerUnet(d.BetaSchedule, n, "decoder.beta_schedule", err);
        // linear / quadratic / sigmoid betas end near 0.02 · 1000 / timesteps: at 20 steps or fewer a beta
        // reaches 1 and the diffusion breaks (upstream trains NaN without a word).
        if (d.Timesteps is > 0 and <= 20 && (d.BetaSchedule is not { IsList: true } || d.BetaSchedule.List!.Count == n))
        {
            var schedules = d.BetaSchedulePerUnet(n);
            int unet = Enumerable.Range(0, n).FirstOrDefault(i => schedules[i] is "linear" or "quadratic" or "sigmoid", -1);
            if (unet >= 0)
                err("decoder.timesteps", $"must be above 20 with the {schedules[unet]} beta schedule of unet {unet + 1}" +
                    $"{(d.BetaSchedule is null ? " (upstream's default for the last of several unets)" : "")}: its betas end at 20 / timesteps = " +
                    $"{20.0 / d.Timesteps:0.##}, and a beta of 1 breaks the diffusion (NaN losses); " +
                    $"raise timesteps or use the cosine schedule, got {d.Timesteps}");
        }
        PerUnet(d.LearnedVariance, n, "decoder.learned_variance", err);
        PerUnet(d.PredictXStart, n, "decoder.predict_x_start", err);
        PerUnet(d.PredictV, n, "decoder.predict_v", err);
        PerUnet(d.P2LossWeightGamma, n, "decoder.p2_loss_weight_gamma", err);
        if (d.RandomCropSizes is { } crops)
        {
            var sizes = d.ImageSizes ?? (d.ImageSize is { } one ? [one] : []);
            for (int i = 0; i < crops.Count && i < sizes.Count; i++)
                if (crops[i] is { } crop && (crop < 1 || crop > sizes[i]))
                    err($"decoder.random_crop_sizes[{i}]", $"must be between 1 and the unet's image size ({sizes[i]}), got {crop}");
            if (crops.Count != n) err("decoder.random_crop_sizes", $"must have one entry per unet ({n}), got {crops.Count}");
            if (crops.Count > 0 && crops[0] is not null) err("decoder.random_crop_sizes[0]", "must be null: the first unet is not randomly cropped");
        }
        if (n > 1)
        {
            PerUnet(d.UseNoiseForLowresCond, n - 1, "decoder.use_noise_for_lowres_cond", err, "upsampler");
            PerUnet(d.UseBlurForLowresCond, n - 1, "decoder.use_blur_for_lowres_cond", err, "upsampler");
            for (int i = 1; i < n; i++)
                if (!d.UseNoiseForLowresCond.At(i - 1) && !d.UseBlurForLowresCond.At(i - 1))
                    err("decoder.use_blur_for_lowres_cond",
                        $"unet {i + 1} is an upsampler and needs noise or blur augmentation of its low-res image");
        }
        Range(d.BlurSigma, "decoder.blur_sigma", err);
        Range(d.BlurKernelSize, "decoder.blur_kernel_size", err);
        Probability(d.ImageCondDropProb, "decoder.image_cond_drop_prob", err);
        Probability(d.TextCondDropProb, "decoder.text_cond_drop_prob", err);
        Probability(d.BlurProb, "decoder.blur_prob", err);
        Probability(d.LowresNoiseSampleLevel, "decoder.lowres_noise_sample_level", err);
        Probability(d.DynamicThresPercentile, "decoder.dynamic_thres_percentile", err);

        for (int i = 0; i < n; i++) ValidateUnet(d, d.Unets[i], i, err);
    }

    private static void ValidateUnet(DecoderConfig d, UnetConfig u, int i, Action<string, string> err)
    {
        string p = $"decoder.unets[{i}]";
        if (u.WasGiven("dim")) Positive(u.Dim, $"{p}.dim", err);
        if (u.DimMults.Count == 0) err($"{p}.dim_mults", "must have at least one stage");
        foreach (var (m, j) in u.DimMults.Select((m, j) => (m, j)))
            if (m <= 0) err($"{p}.dim_mults[{j}]", $"must be positive (got {m})");
        int stages = u.DimMults.Count;
        PerUnet(u.SelfAttn, stages, $"{p}.self_attn", err, "stage");
        PerUnet(u.ResnetGroups, stages, $"{p}.resnet_groups", err, "stage");
        PerUnet(u.NumResnetBlocks, stages, $"{p}.num_resnet_blocks", err, "stage");
        foreach (var k in u.InitCrossEmbedKernelSizes)
            if (k <= 0 || k % 2 == 0) err($"{p}.init_cross_embed_kernel_sizes", $"kernels must be odd and positive (got {k})");
        foreach (var k in u.CrossEmbedDownsampleKernelSizes)
            if (k <= 0 || k % 2 != 0) err($"{p}.cross_embed_downsample_kernel_sizes", $"kernels must be even and positive (got {k})");
        if (u.InitDim is { } initDim && initDim != u.Dim)
            err($"{p}.init_dim", $"must equal dim ({u.Dim}): upstream's final block assumes it");
        if (u.DimMults.Count > 0 && u.DimMults[0] != 1 && !u.MemoryEfficient)
            err($"{p}.dim_mults[0]", "must be 1 unless memory_efficient is true: upstream's final block assumes it");

        bool imageConditioned = i == 0 && !d.Unconditional;
        if (imageConditioned && u.ImageEmbedDim is null && d.Clip is null)
            err($"{p}.image_embed_dim", "required: the first unet is conditioned on the image embedding");
        if (u.CondOnTextEncodings && !d.Unconditional && u.TextEmbedDim is null && d.Clip is null)
            err($"{p}.text_embed_dim", "required with cond_on_text_encodings (the width of the text encodings)");
        if (imageConditioned && u.ImageEmbedDim is { } ied && ied == (u.CondDim ?? u.Dim))
            err($"{p}.cond_dim", $"must differ from image_embed_dim ({ied}): upstream's image-token projection breaks when they are equal");
        Positive(u.AttnHeads, $"{p}.attn_heads", err);
        Positive(u.AttnDimHead, $"{p}.attn_dim_head", err);
        ValidateShapes(d, u, i, p, err);
    }

    /// <summary>
    /// Shapes libtorch would only reject mid-run, with a native message and no config path: every
    /// GroupNorm's channels divisible by its groups, and an image size that halves cleanly at every
    /// downsample (the skip connections concatenate feature maps of equal size).
    /// </summary>
    private static void ValidateShapes(DecoderConfig d, UnetConfig u, int i, string p, Action<string, string> err)
    {
        int stages = u.DimMults.Count;
        if (stages == 0 || u.Dim <= 0 || u.DimMults.Any(m => m <= 0)) return;
        if (u.ResnetGroups is { IsList: true } rg && rg.List!.Count != stages) return;
        var groups = u.ResnetGroups.Expand(stages);
        var dims = new[] { (long)(u.InitDim ?? u.Dim) }.Concat(u.DimMults.Select(m => (long)u.Dim * m)).ToArray();
        for (int s = 0; s < stages; s++)
        {
            if (groups[s] <= 0) { err(ElementPath(u.ResnetGroups, $"{p}.resnet_groups", s), $"must be positive (got {groups[s]})"); continue; }
            foreach (long width in new[] { dims[s], dims[s + 1] }.Distinct())
                if (width % groups[s] != 0)
                    err(ElementPath(u.ResnetGroups, $"{p}.resnet_groups", s),
                        $"{groups[s]} groups do not divide stage {s + 1}'s {width} channels (GroupNorm needs them to)");
        }
        if (u.CombineUpsampleFmaps && u.Dim % CombinerGroups != 0)
            err($"{p}.combine_upsample_fmaps",
                $"needs dim divisible by {CombinerGroups} (upstream's combiner blocks use GroupNorm({CombinerGroups}, dim)), got dim {u.Dim}");
        int downsamples = stages - 1 + (u.MemoryEfficient ? 1 : 0);
        var sizes = d.ImageSizes ?? (d.ImageSize is { } one ? [one] : []);
        if (i < sizes.Count && sizes[i] > 0 && sizes[i] % (1 << downsamples) != 0)
            err(d.ImageSizes is not null ? $"decoder.image_sizes[{i}]" : "decoder.image_size",
                $"{sizes[i]} px does not halve cleanly {downsamples} times " +
                $"(unet {i + 1} has {stages} stages{(u.MemoryEfficient ? ", memory_efficient" : "")}): use a multiple of {1 << downsamples}");
    }

    /// <summary>Upstream's Block default groups, used by the UpsampleCombiner.</summary>
    private const int CombinerGroups = 8;

    private static void ValidateData(DataConfig data, Action<string, string> err)
    {
        if (!data.WebdatasetBaseUrl.Contains("{}") && !BraceRange().IsMatch(data.WebdatasetBaseUrl) && data.WasGiven("webdataset_base_url"))
            err("data.webdataset_base_url", "must contain {} where the shard number goes (or a brace range such as {000..099})");
        if (data.NumWorkers < 0) err("data.num_workers", $"must be 0 or more (got {data.NumWorkers})");
        Positive(data.BatchSize, "data.batch_size", err);
        if (data.ConnectTimeout <= 0) err("data.connect_timeout", $"must be positive (seconds), got {data.ConnectTimeout}");
        if (data.StallTimeout <= 0) err("data.stall_timeout", $"must be positive (seconds), got {data.StallTimeout}");
        if (data.MaxImagePixels < 0) err("data.max_image_pixels", $"must be 0 (no limit) or more, got {data.MaxImagePixels}");
        if (data.StartShard < 0) err("data.start_shard", $"must be 0 or more (got {data.StartShard})");
        if (data.StartShard > data.EndShard) err("data.end_shard", $"must be ≥ start_shard ({data.StartShard}), got {data.EndShard}");
        Positive(data.ShardWidth, "data.shard_width", err);
        Positive(data.IndexWidth, "data.index_width", err);

        var s = data.Splits;
        foreach (var (name, v) in new[] { ("train", s.Train), ("val", s.Val), ("test", s.Test) })
            if (v < 0 || v > 1) err($"data.splits.{name}", $"must be between 0 and 1 (got {v})");
        double sum = s.Train + s.Val + s.Test;
        // Upstream compares the float sum with 1.0 exactly and so rejects 0.7/0.2/0.1; we allow rounding.
        if (Math.Abs(sum - 1.0) > 1e-6) err("data.splits", $"must sum to 1 (got {sum:0.######})");

        if (data.ResampleTrain && data.ShuffleTrain)
            err("data.resample_train",
                "cannot be combined with shuffle_train (resampling already draws shards at random); set shuffle_train to false");

        foreach (var step in data.Preprocessing.Steps)
        {
            string p = $"data.preprocessing.{step.Name}";
            switch (step)
            {
                case RandomResizedCropConfig c:
                    Size(c.Size, $"{p}.size", err);
                    Pair(c.Scale, $"{p}.scale", err, v => v is >= 0 and <= 1, "must lie in [0, 1]");
                    Pair(c.Ratio, $"{p}.ratio", err, v => v > 0, "must be positive");
                    break;
                case ResizeConfig r: Size(r.Size, $"{p}.size", err); break;
                case CenterCropConfig cc: Size(cc.Size, $"{p}.size", err); break;
                case RandomHorizontalFlipConfig f: Probability(f.P, $"{p}.p", err); break;
            }
        }
    }

    private static void ValidateTrain(TrainConfig t, int n, Action<string, string> err)
    {
        if (t.Epochs < 0) err("train.epochs", $"must be 0 or more (got {t.Epochs})");
        PerUnet(t.Lr, n, "train.lr", err);
        foreach (var (lr, i) in t.Lr.Values.Select((v, i) => ((double)v!, i)))
            if (lr <= 0 || lr > 1e-2) err(ElementPath(t.Lr, "train.lr", i), $"must be in (0, 0.01] (got {lr}); upstream asserts lr ≤ 0.01");
        PerUnet(t.Wd, n, "train.wd", err);
        PerUnet(t.WarmupSteps, n, "train.warmup_steps", err);
        if (t.WarmupSteps is not null)
            foreach (var (v, i) in t.WarmupSteps.Values.Select((v, i) => (v as int?, i)))
                if (v is < 1) err(ElementPath(t.WarmupSteps, "train.warmup_steps", i), $"must be positive (got {v})");
        PerUnet(t.MaxGradNorm, n, "train.max_grad_norm", err);
        PerUnet(t.CondScale, n, "train.cond_scale", err);
        if (t.SaveEveryNSamples <= 0) err("train.save_every_n_samples", $"must be positive (got {t.SaveEveryNSamples})");
        if (t.NSampleImages < 0) err("train.n_sample_images", $"must be 0 or more (got {t.NSampleImages})");
        if (!DevicePattern().IsMatch(t.Device)) err("train.device", $"\"{t.Device}\" is not one of cpu, cuda, cuda:N");
        if (t.EpochSamples is <= 0) err("train.epoch_samples", $"must be positive (got {t.EpochSamples})");
        if (t.ValidationSamples is < 0) err("train.validation_samples", $"must be 0 or more (got {t.ValidationSamples})");
        if (t.EmaBeta < 0 || t.EmaBeta >= 1) err("train.ema_beta", $"must be in [0, 1) (got {t.EmaBeta})");
        if (t.UnetTrainingMask is { } mask)
        {
            if (mask.Count != n) err("train.unet_training_mask", $"must have one flag per unet ({n}), got {mask.Count}");
            else if (!mask.Any(m => m)) err("train.unet_training_mask", "trains no unet: at least one flag must be true");
        }
    }

    private static void ValidateEvaluate(EvaluateConfig e, Action<string, string> err)
    {
        if (e.NEvaluationSamples < 0) err("evaluate.n_evaluation_samples", $"must be 0 or more (got {e.NEvaluationSamples})");
        if (e.IS is { } inception) Positive(inception.Splits, "evaluate.IS.splits", err);
        if (e.KID is { } kid)
        {
            Positive(kid.Subsets, "evaluate.KID.subsets", err);
            Positive(kid.SubsetSize, "evaluate.KID.subset_size", err);
            Positive(kid.Degree, "evaluate.KID.degree", err);
            if (kid.SubsetSize > e.NEvaluationSamples)
                err("evaluate.KID.subset_size", $"must not exceed n_evaluation_samples ({e.NEvaluationSamples}), got {kid.SubsetSize}");
        }
        // Upstream hands the metrics uint8 images (FID/IS/KID) and [-1, 1] images (LPIPS); with normalize
        // torchmetrics would scale them again (×255, or 2x − 1) and the numbers would mean nothing.
        foreach (var (metric, normalize) in
                 new[] { ("FID", e.FID?.Normalize), ("IS", e.IS?.Normalize), ("KID", e.KID?.Normalize), ("LPIPS", e.LPIPS?.Normalize) })
            if (normalize == true)
                err($"evaluate.{metric}.normalize", "must be false: the evaluation feeds the metric images already in its expected range " +
                    "(uint8, or [-1, 1] for LPIPS, as upstream); normalize would rescale them a second time");
    }

    private static void ValidateTracker(TrackerConfig t, Action<string, string> err)
    {
        if (string.IsNullOrWhiteSpace(t.DataPath)) err("tracker.data_path", "must not be empty");
        if (t.Log.LogType == "wandb")
        {
            if (t.Log.WandbEntity is null) err("tracker.log.wandb_entity", "required when log_type is wandb");
            if (t.Log.WandbProject is null) err("tracker.log.wandb_project", "required when log_type is wandb");
            if (t.Log.Resume && t.Log.WandbRunId is null) err("tracker.log.wandb_run_id", "required when resume is true (the run to resume)");
        }
        if (t.Load is { LoadFrom: { } from } load)
        {
            if (from == "local" && load.FilePath is null) err("tracker.load.file_path", "required when load_from is local");
            if (from == "url" && load.Url is null) err("tracker.load.url", "required when load_from is url");
            if (from == "url" && load.Url is { } url
                && !Uri.TryCreate(url, UriKind.Absolute, out var u) | u?.Scheme is not ("http" or "https" or "s3"))
                err("tracker.load.url", $"must be an http(s) or s3 URL (got \"{load.Url}\")");
            if (from == "wandb" && load.WandbFilePath is null) err("tracker.load.wandb_file_path", "required when load_from is wandb");
        }
        if (t.WasGiven("save") && t.Save.Count == 0) err("tracker.save", "needs at least one saver");
        for (int i = 0; i < t.Save.Count; i++)
        {
            var s = t.Save[i];
            if (s.SaveLatestTo is null && s.SaveBestTo is null && s.SaveMetaTo is null)
                err($"tracker.save[{i}]", "needs at least one of save_latest_to, save_best_to, save_meta_to");
            if (s.SaveTo == "huggingface" && s.HuggingfaceRepo is null)
                err($"tracker.save[{i}].huggingface_repo", "required when save_to is huggingface");
            foreach (var (template, key) in new[] { (s.SaveLatestTo, "save_latest_to"), (s.SaveBestTo, "save_best_to") })
            {
                if (template is null) continue;
                try { Runtime.PythonFormat.Format(template, SaveTemplateFields); }
                catch (FormatException e) { err($"tracker.save[{i}].{key}", e.Message); }
            }
        }
    }

    /// <summary>The fields upstream formats save paths with (trainer.save's keyword arguments), with sample values.</summary>
    private static readonly Dictionary<string, object> SaveTemplateFields = new()
    {
        ["epoch"] = 0, ["sample"] = 0L, ["next_task"] = "train", ["samples_seen"] = 0L, ["validation_losses"] = "[]",
    };

    /// <summary>CLIP implementations this build has: OpenAI's and open_clip's (vision transformers).</summary>
    private static void ValidateClip(ClipConfig? clip, Action<string, string> err)
    {
        if (clip is null) return;
        if (clip.Make is "x-clip" or "coca")
            err("decoder.clip.make", $"{clip.Make} is not supported: use openai (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px) or open_clip " +
                "(a ViT weights file), or precompute embeddings and give data.img_embeddings_url");
        if (clip.BaseModelKwargs is { Count: > 0 })
            err("decoder.clip.base_model_kwargs", "not supported: the CLIP architecture is read from its weights (as openai/CLIP's build_model)");
    }

    /// <summary>Upstream's check_has_embeddings: every conditioning signal has exactly one source.</summary>
    private static void ValidateEmbeddingSources(TrainDecoderConfig c, Action<string, string> err)
    {
        var d = c.Decoder;
        if (d.Unconditional) return;
        bool textConditioned = d.Unets.Any(u => u.CondOnTextEncodings);
        bool clip = d.Clip is not null;
        bool img = c.Data.ImgEmbeddingsUrl is not null, text = c.Data.TextEmbeddingsUrl is not null;

        if (!img && !clip) err("data.img_embeddings_url", "required: image embeddings come from img_embeddings_url or decoder.clip");
        if (img && clip) err("data.img_embeddings_url", "redundant: decoder.clip already computes image embeddings; remove one of the two");
        if (textConditioned && !text && !clip)
            err("data.text_embeddings_url",
                "required: a unet has cond_on_text_encodings, so text encodings come from text_embeddings_url or decoder.clip");
        if (text && !textConditioned)
            err("data.text_embeddings_url", "no unet has cond_on_text_encodings, so text embeddings would be unused");
        else if (text && clip) err("data.text_embeddings_url", "redundant: decoder.clip already computes text encodings; remove one of the two");
    }

    private static void PerUnet<T>(ScalarOrList<T>? value, int n, string path, Action<string, string> err, string what = "unet")
    {
        if (value?.Count is { } count && count != n)
            err(path, $"must be one value or a list with one per {what} ({n}), got {count}");
    }

    /// <summary>The JSON path of entry i: "x[i]" when the option was given as a list, "x" for a scalar.</summary>
    private static string ElementPath(IScalarOrList value, string path, int i) => value.IsList ? $"{path}[{i}]" : path;

    private static void Range<T>(ScalarOrList<T> value, string path, Action<string, string> err)
    {
        if (value.Count is { } count && count != 2) err(path, $"must be one value or a [low, high] range, got {count} values");
    }

    private static void Pair(List<double> value, string path, Action<string, string> err, Func<double, bool> valid, string rule)
    {
        if (value.Count != 2) { err(path, $"must be [low, high], got {value.Count} values"); return; }
        if (value[0] > value[1]) err(path, $"low must not exceed high ({value[0]} > {value[1]})");
        if (!valid(value[0]) || !valid(value[1])) err(path, $"values {rule} (got [{value[0]}, {value[1]}])");
    }

    private static void Size(ScalarOrList<int> size, string path, Action<string, string> err)
    {
        if (size.Count is { } c && c is not (1 or 2)) err(path, $"must be one number or [height, width], got {c} values");
        foreach (var v in size.Values.Cast<int>())
            if (v <= 0) err(path, $"must be positive (got {v})");
    }

    private static void Positive(long v, string path, Action<string, string> err)
    {
        if (v <= 0) err(path, $"must be positive (got {v})");
    }

    private static void Probability(double v, string path, Action<string, string> err)
    {
        if (v < 0 || v > 1) err(path, $"must be between 0 and 1 (got {v})");
    }

    [GeneratedRegex(@"^(cpu|cuda(:\d+)?)$")]
    private static partial Regex DevicePattern();

    [GeneratedRegex(@"\{\d+\.\.\d+\}")]
    private static partial Regex BraceRange();
}
