using System.Text.Json.Nodes;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Config;

/// <summary>One failing config per validation rule, asserting the JSON path and the message.</summary>
public class ConfigValidationTests
{
    private static ConfigFixture F() => new();
    private static JsonArray A(params JsonNode?[] items) => new(items);

    [Fact]
    public void MinimalConfigIsValid() => F().Load();

    [Fact]
    public void XClipAndCocaAreRefusedAtValidation()
    {
        foreach (var make in new[] { "x-clip", "coca" })
            F().Remove("data.img_embeddings_url").Set("decoder.clip", new JsonObject { ["make"] = make, ["model"] = "ViT-B/32" })
                .AssertError("decoder.clip.make", "is not supported");
    }

    // required fields
    [Fact] public void UnetDimRequired() => F().Remove("decoder.unets[0].dim").AssertError("decoder.unets[0].dim", "required");
    [Fact] public void UnetDimNullIsRequired() => F().Set("decoder.unets[0].dim", null).AssertError("decoder.unets[0].dim", "required (got null)");
    [Fact] public void DecoderRequired() => F().Remove("decoder").AssertError("decoder", "required");
    [Fact] public void TrackerLogRequired() => F().Remove("tracker.log").AssertError("tracker.log", "required");
    [Fact] public void WebdatasetUrlRequired() => F().Remove("data.webdataset_base_url").AssertError("data.webdataset_base_url", "required");
    [Fact] public void RandomResizedCropSizeRequired() =>
        F().Set("data.preprocessing", new JsonObject { ["RandomResizedCrop"] = true }).AssertError("data.preprocessing.RandomResizedCrop.size", "required");

    // types
    [Fact] public void IntegerExpected() => F().Set("data.batch_size", "64").AssertError("data.batch_size", "must be an integer, got the string \"64\"");
    [Fact] public void FractionalIntegerRejected() => F().Set("data.batch_size", 2.5).AssertError("data.batch_size", "must be an integer, got the number 2.5");
    [Fact] public void IntegralFloatAccepted() => Assert.Equal(2, F().Set("data.batch_size", 2.0).Load().Data.BatchSize);
    [Fact] public void BoolExpected() => F().Set("train.use_ema", 1).AssertError("train.use_ema", "must be true or false, got the number 1");
    [Fact] public void NumberExpected() => F().Set("train.wd", "x").AssertError("train.wd", "must be a number, got the string \"x\"");
    [Fact] public void ObjectExpected() => F().Set("data.splits", 1).AssertError("data.splits", "must be an object, got the number 1");
    [Fact] public void ListElementTypeChecked() => F().Set("decoder.image_sizes", A(32, "big")).AssertError("decoder.image_sizes[1]", "must be an integer");
    [Fact] public void NullForNonNullable() => F().Set("train.epochs", null).AssertError("train.epochs", "must be an integer, got null");

    // unknown keys name the nearest valid ones
    [Fact] public void TypoNamesAbbreviation() => F().Set("train.lerning_rate", 1e-4).AssertError("train.lerning_rate", "unknown key; did you mean lr?");
    [Fact] public void TypoNamesNearestKey() => F().Set("data.batchsize", 4).AssertError("data.batchsize", "did you mean batch_size");
    [Fact] public void UnknownUnetArgument() => F().Set("decoder.unets[0].attn_head", 4).AssertError("decoder.unets[0].attn_head", "did you mean attn_heads");
    [Fact] public void UnknownTopLevelKey() => F().Set("trian", new JsonObject()).AssertError("trian", "did you mean train");
    [Fact] public void KeyOfAnotherKind() =>
        F().Set("tracker.log.wandb_project", "p").AssertError("tracker.log.wandb_project", "only allowed when log_type is wandb (it is \"console\")");

    // enumerations
    [Fact] public void LossType() => F().Set("decoder.loss_type", "l3").AssertError("decoder.loss_type", "\"l3\" is not one of l1, l2, huber");
    [Fact] public void BetaScheduleScalar() => F().Set("decoder.beta_schedule", "cosin").AssertError("decoder.beta_schedule", "\"cosin\" is not one of cosine, linear, quadratic, jsd, sigmoid");
    [Fact] public void BetaScheduleListEntry() => F().Set("decoder.beta_schedule", A("foo")).AssertError("decoder.beta_schedule[0]", "\"foo\" is not one of cosine");
    [Fact] public void LogType() => F().Set("tracker.log.log_type", "tensorboardx").AssertError("tracker.log.log_type", "is not one of console, wandb");
    [Fact] public void LoadFrom() => F().Set("tracker.load", new JsonObject { ["load_from"] = "s3" }).AssertError("tracker.load.load_from", "\"s3\" is not one of local, url, wandb");
    [Fact] public void SaveTo() => F().Set("tracker.save.save_to", "s3").AssertError("tracker.save[0].save_to", "\"s3\" is not one of local, wandb, huggingface");
    [Fact] public void SaveType() => F().Set("tracker.save.save_type", "weights").AssertError("tracker.save[0].save_type", "\"weights\" is not one of checkpoint, model");
    [Fact] public void PreprocessingName() =>
        F().Set("data.preprocessing", new JsonObject { ["RandomCrop"] = true }).AssertError("data.preprocessing.RandomCrop", "\"RandomCrop\" is not one of RandomResizedCrop, RandomHorizontalFlip, Resize, CenterCrop, ToTensor");
    [Fact] public void FidFeature() => F().Set("evaluate.FID", new JsonObject { ["feature"] = 100 }).AssertError("evaluate.FID.feature", "100 is not one of 64, 192, 768, 2048");
    [Fact] public void LpipsNet() => F().Set("evaluate.LPIPS", new JsonObject { ["net_type"] = "resnet" }).AssertError("evaluate.LPIPS.net_type", "is not one of vgg, alex, squeeze");
    [Fact] public void Device() => F().Set("train.device", "gpu").AssertError("train.device", "\"gpu\" is not one of cpu, cuda, cuda:N");

    // image_size vs image_sizes
    [Fact] public void BothImageSizes() => F().Set("decoder.image_size", 32).AssertError("decoder.image_size", "give image_size or image_sizes, not both");
    [Fact] public void NoImageSize() => F().Remove("decoder.image_sizes").AssertError("decoder.image_sizes", "required (or image_size for a single unet)");
    [Fact] public void ImageSizeAloneWorks() => Assert.Equal(32, F().Remove("decoder.image_sizes").Set("decoder.image_size", 32).Load().Decoder.ImageSize);

    // counts per unet
    [Fact] public void ImageSizesCount() => F().Set("decoder.image_sizes", A(32, 64)).AssertError("decoder.image_sizes", "must have one size per unet (1), got 2");
    [Fact] public void TrainingMaskCount() => F().Set("train.unet_training_mask", A(true, false)).AssertError("train.unet_training_mask", "must have one flag per unet (1), got 2");
    [Fact] public void LrListCount() => F().Set("train.lr", A(1e-4, 1e-4)).AssertError("train.lr", "must be one value or a list with one per unet (1), got 2");
    [Fact] public void WdListCount() => F().Set("train.wd", A(0.1, 0.1)).AssertError("train.wd", "one per unet (1), got 2");
    [Fact] public void MaxGradNormListCount() => F().Set("train.max_grad_norm", A(0.5, 0.5)).AssertError("train.max_grad_norm", "one per unet (1), got 2");
    [Fact] public void WarmupListCount() => F().Set("train.warmup_steps", A(100, 100)).AssertError("train.warmup_steps", "one per unet (1), got 2");
    [Fact] public void CondScaleListCount() => F().Set("train.cond_scale", A(1.0, 2.0)).AssertError("train.cond_scale", "one per unet (1), got 2");
    [Fact] public void LearnedVarianceListCount() => F().Set("decoder.learned_variance", A(true, false)).AssertError("decoder.learned_variance", "one per unet (1), got 2");
    [Fact] public void SampleTimestepsListCount() => F().Set("decoder.sample_timesteps", A(5, 5)).AssertError("decoder.sample_timesteps", "one per unet (1), got 2");
    [Fact] public void BetaScheduleListCount() => F().Set("decoder.beta_schedule", A("cosine", "linear")).AssertError("decoder.beta_schedule", "one per unet (1), got 2");
    [Fact] public void SelfAttnPerStageCount() => F().Set("decoder.unets[0].self_attn", A(true)).AssertError("decoder.unets[0].self_attn", "one per stage (2), got 1");

    [Fact]
    public void PerUnetListsOfTheRightLengthAreAccepted()
    {
        var c = F().Set("decoder.unets[1]", JsonNode.Parse("""{ "dim": 8, "dim_mults": [1, 2] }"""))
            .Set("decoder.image_sizes", A(32, 64))
            .Set("train.lr", A(1e-4, 3e-4)).Set("train.wd", A(0.01, 0.0)).Set("train.max_grad_norm", A(0.5, 1.0))
            .Set("train.warmup_steps", A(100, null)).Set("train.cond_scale", A(1.0, 3.0))
            .Set("decoder.learned_variance", A(true, false)).Set("decoder.sample_timesteps", A(null, 5))
            .Set("decoder.beta_schedule", A("cosine", "linear")).Set("decoder.timesteps", 25).Load();
        Assert.Equal([1e-4, 3e-4], c.Train.Lr.Expand(2));
        Assert.Equal([100, null], c.Train.WarmupSteps!.Expand(2));
        Assert.Equal(3.0, c.Train.CondScale.At(1));
        Assert.Equal([null, 5], c.Decoder.SampleTimesteps!.Expand(2));
        Assert.Equal(2.0e-4 * 0 + 0.01, c.Train.Wd.At(0));
    }

    [Fact] public void ImageSizesIncrease() =>
        F().Set("decoder.unets[1]", JsonNode.Parse("""{ "dim": 8 }""")).Set("decoder.image_sizes", A(64, 32))
           .AssertError("decoder.image_sizes[1]", "image sizes must increase along the cascade (64 then 32)");

    // splits
    [Fact] public void SplitsSum() =>
        F().Set("data.splits", JsonNode.Parse("""{ "train": 0.8, "val": 0.15, "test": 0.1 }""")).AssertError("data.splits", "must sum to 1 (got 1.05)");
    [Fact] public void SplitsWithinRoundingAccepted()
    {
        // 0.7 + 0.2 + 0.1 == 0.9999999999999999 in doubles: upstream rejects it, we accept.
        var c = F().Set("data.splits", JsonNode.Parse("""{ "train": 0.7, "val": 0.2, "test": 0.1 }""")).Load();
        Assert.Equal(0.7, c.Data.Splits.Train);
    }
    [Fact] public void SplitFractionRange() =>
        F().Set("data.splits", JsonNode.Parse("""{ "train": 1.2, "val": -0.1, "test": -0.1 }""")).AssertError("data.splits.train", "must be between 0 and 1 (got 1.2)");

    // resampling
    [Fact] public void ResampleWithShuffle() =>
        F().Set("data.resample_train", true).Set("train.epoch_samples", 10)
           .AssertError("data.resample_train", "cannot be combined with shuffle_train");
    [Fact] public void ResampleWithoutEpochSamples() =>
        F().Set("data.resample_train", true).Set("data.shuffle_train", false)
           .AssertError("train.epoch_samples", "required when data.resample_train is true");

    // shards
    [Fact] public void StartAfterEnd() => F().Set("data.start_shard", 5).Set("data.end_shard", 2).AssertError("data.end_shard", "must be ≥ start_shard (5), got 2");
    [Fact] public void UrlNeedsPlaceholder() => F().Set("data.webdataset_base_url", "shards/a.tar").AssertError("data.webdataset_base_url", "must contain {}");
    [Fact] public void BraceRangeAccepted() => F().Set("data.webdataset_base_url", "shards/{000..009}.tar").Load();

    // embedding sources (upstream's check_has_embeddings)
    [Fact] public void ImageEmbeddingsNeedASource() =>
        F().Remove("data.img_embeddings_url").AssertError("data.img_embeddings_url", "required: image embeddings come from img_embeddings_url or decoder.clip");
    [Fact] public void ClipAloneIsASource() =>
        F().Remove("data.img_embeddings_url").Set("decoder.clip", JsonNode.Parse("""{ "make": "openai", "model": "ViT-L/14" }""")).Load();
    [Fact] public void ClipAndImageEmbeddingsAreRedundant() =>
        F().Set("decoder.clip", JsonNode.Parse("""{ "make": "openai", "model": "ViT-L/14" }""")).AssertError("data.img_embeddings_url", "redundant");
    [Fact] public void TextConditioningNeedsASource() =>
        F().Set("decoder.unets[0].cond_on_text_encodings", true).Set("decoder.unets[0].text_embed_dim", 32)
           .AssertError("data.text_embeddings_url", "required: a unet has cond_on_text_encodings");
    [Fact] public void TextEmbeddingsWithoutTextConditioning() =>
        F().Set("data.text_embeddings_url", "text/").AssertError("data.text_embeddings_url", "no unet has cond_on_text_encodings");
    [Fact] public void ClipAndTextEmbeddingsAreRedundant() =>
        F().Remove("data.img_embeddings_url").Set("decoder.clip", new JsonObject()).Set("decoder.unets[0].cond_on_text_encodings", true)
           .Set("data.text_embeddings_url", "text/").AssertError("data.text_embeddings_url", "redundant");
    [Fact] public void UnconditionalNeedsNoEmbeddings() => F().Remove("data.img_embeddings_url").Set("decoder.unconditional", true).Load();

    // other rules
    [Fact] public void LrUpperBound() => F().Set("train.lr", 0.1).AssertError("train.lr", "must be in (0, 0.01]");
    [Fact] public void SampleTimestepsAtMostTimesteps() => F().Set("decoder.sample_timesteps", 20).AssertError("decoder.sample_timesteps", "must be between 1 and timesteps (10), got 20");
    [Fact] public void LinearBetasNeedMoreThan20Timesteps() =>
        F().Set("decoder.beta_schedule", "linear").AssertError("decoder.timesteps", "must be above 20 with the linear beta schedule of unet 1: its betas end at 20 / timesteps = 2");
    [Fact] public void ShortBetaScheduleListIsACountErrorNotACrash() =>
        F().Set("decoder.unets[1]", JsonNode.Parse("""{ "dim": 8, "dim_mults": [1, 2] }""")).Set("decoder.image_sizes", A(32, 64))
           .Set("decoder.beta_schedule", A("cosine")).AssertError("decoder.beta_schedule", "one per unet (2), got 1");
    [Fact] public void CosineBetasTakeFewTimesteps() => Assert.Equal(10, F().Set("decoder.beta_schedule", "cosine").Load().Decoder.Timesteps);
    [Fact] public void MaskTrainsSomething() => F().Set("train.unet_training_mask", A(false)).AssertError("train.unet_training_mask", "trains no unet");
    [Fact] public void WandbNeedsEntity() => F().Set("tracker.log", JsonNode.Parse("""{ "log_type": "wandb", "wandb_project": "p" }""")).AssertError("tracker.log.wandb_entity", "required when log_type is wandb");
    [Fact] public void LocalLoadNeedsFile() => F().Set("tracker.load", new JsonObject { ["load_from"] = "local" }).AssertError("tracker.load.file_path", "required when load_from is local");
    [Fact] public void SaverNeedsDestination() => F().Set("tracker.save", JsonNode.Parse("""[{ "save_to": "local" }]""")).AssertError("tracker.save[0]", "needs at least one of save_latest_to, save_best_to, save_meta_to");
    [Fact] public void HuggingfaceNeedsRepo() => F().Set("tracker.save.save_to", "huggingface").AssertError("tracker.save[0].huggingface_repo", "required when save_to is huggingface");
    [Fact] public void FirstUnetNeedsImageEmbedDim() => F().Remove("decoder.unets[0].image_embed_dim").AssertError("decoder.unets[0].image_embed_dim", "required");
    [Fact] public void CondDimMustDifferFromImageEmbedDim() => F().Set("decoder.unets[0].cond_dim", 32).AssertError("decoder.unets[0].cond_dim", "must differ from image_embed_dim (32)");
    [Fact] public void FirstDimMultIsOne() => F().Set("decoder.unets[0].dim_mults", A(2, 4)).AssertError("decoder.unets[0].dim_mults[0]", "must be 1 unless memory_efficient");
    [Fact] public void CropScaleRange() =>
        F().Set("data.preprocessing", JsonNode.Parse("""{ "RandomResizedCrop": { "size": 32, "scale": [0.9, 0.5] } }""")).AssertError("data.preprocessing.RandomResizedCrop.scale", "low must not exceed high");
    [Fact] public void UpsamplerNeedsAugmentation() =>
        F().Set("decoder.unets[1]", JsonNode.Parse("""{ "dim": 8 }""")).Set("decoder.image_sizes", A(32, 64)).Set("decoder.use_blur_for_lowres_cond", false)
           .AssertError("decoder.use_blur_for_lowres_cond", "needs noise or blur augmentation");
    [Fact] public void PositiveBatch() => F().Set("data.batch_size", 0).AssertError("data.batch_size", "must be positive (got 0)");
    [Fact] public void ProbabilityRange() => F().Set("decoder.image_cond_drop_prob", 1.5).AssertError("decoder.image_cond_drop_prob", "must be between 0 and 1 (got 1.5)");

    [Fact]
    public void FalseTransformIsLeftOut()
    {
        var c = F().Set("data.preprocessing", JsonNode.Parse("""{ "RandomHorizontalFlip": false, "ToTensor": true }""")).Load();
        Assert.IsType<ToTensorConfig>(Assert.Single(c.Data.Preprocessing.Steps));
    }

    [Fact]
    public void SingleSaverObjectBecomesAList() => Assert.Equal("latest.pth", Assert.Single(F().Load().Tracker.Save).SaveLatestTo);

    [Fact]
    public void EveryErrorIsReportedAtOnce()
    {
        var errors = F().Set("decoder.loss_type", "l3").Set("data.batch_size", "x").Set("train.lerning_rate", 1)
            .Set("data.splits", JsonNode.Parse("""{ "train": 0.8, "val": 0.15, "test": 0.1 }""")).Errors();
        Assert.Equal(["data.batch_size", "data.splits", "decoder.loss_type", "train.lerning_rate"], errors.Select(e => e.Path).Order());
    }

    [Fact]
    public void InvalidJsonGivesLineAndColumn()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("{\n  \"decoder\": {,\n}", "cfg.json"));
        Assert.StartsWith("cfg.json:2:15: invalid JSON", Assert.Single(e.Errors).Message);
    }
}

public class FormerlyUnsupportedOptionTests
{
    [Fact]
    public void CombineUpsampleFmapsAndRandomCropSizesAreAccepted()
    {
        new ConfigFixture().Set("decoder.unets[0].combine_upsample_fmaps", true).Load();
        new ConfigFixture().Set("decoder.random_crop_sizes", System.Text.Json.Nodes.JsonNode.Parse("[null]")).Load();
        var cascade = () => new ConfigFixture().Set("decoder.unets[1]", System.Text.Json.Nodes.JsonNode.Parse("""{ "dim": 8 }"""))
            .Set("decoder.image_sizes", System.Text.Json.Nodes.JsonNode.Parse("[32, 64]")).Set("decoder.timesteps", 100);
        cascade().Set("decoder.random_crop_sizes", System.Text.Json.Nodes.JsonNode.Parse("[null, 48]")).Load();
        cascade().Set("decoder.random_crop_sizes", System.Text.Json.Nodes.JsonNode.Parse("[null, 100]"))
            .AssertError("decoder.random_crop_sizes[1]", "between 1 and the unet's image size (64)");
    }
}

public class ShapeRuleTests
{
    [Fact]
    public void GroupsThatDoNotDivideAStageAreAConfigError() =>
        new ConfigFixture().Set("decoder.unets[0].resnet_groups", 5).AssertError("decoder.unets[0].resnet_groups", "5 groups do not divide stage 1's");

    [Fact]
    public void AnImageSizeThatDoesNotHalveCleanlyIsAConfigError() =>
        new ConfigFixture().Set("decoder.unets[0].dim_mults", System.Text.Json.Nodes.JsonNode.Parse("[1, 2, 4, 8]"))
            .Set("decoder.image_sizes", System.Text.Json.Nodes.JsonNode.Parse("[60]"))
            .AssertError("decoder.image_sizes[0]", "does not halve cleanly 3 times");

    [Fact]
    public void NonPositiveAttentionShapesAreConfigErrors() =>
        new ConfigFixture().Set("decoder.unets[0].attn_heads", 0).AssertError("decoder.unets[0].attn_heads", "positive");
}
