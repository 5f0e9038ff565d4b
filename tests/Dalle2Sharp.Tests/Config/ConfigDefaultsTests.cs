using System.Text.Json.Nodes;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Config;

/// <summary>
/// The resolved value of every option left out of a config equals upstream's default
/// (upstream-spec §2.1, §3.1, §10; torchmetrics for the metric options). Where we deliberately
/// differ, the line says so.
/// </summary>
public class ConfigDefaultsTests
{
    private static readonly Dictionary<string, string> UpstreamDefaults = new()
    {
        ["seed"] = "0",
        // decoder.unets[0] (Unet constructor, §2.1); dim, image_embed_dim, cond_dim and dim_mults are given by the fixture
        ["decoder.unets[0].text_embed_dim"] = "null",
        ["decoder.unets[0].num_image_tokens"] = "4",
        ["decoder.unets[0].num_time_tokens"] = "2",
        ["decoder.unets[0].out_dim"] = "null",
        ["decoder.unets[0].channels"] = "3",
        ["decoder.unets[0].channels_out"] = "null",
        ["decoder.unets[0].self_attn"] = "false",
        ["decoder.unets[0].attn_dim_head"] = "32",
        ["decoder.unets[0].attn_heads"] = "16",
        ["decoder.unets[0].lowres_cond"] = "false",
        ["decoder.unets[0].lowres_noise_cond"] = "false",
        ["decoder.unets[0].self_cond"] = "false",
        ["decoder.unets[0].sparse_attn"] = "false",
        ["decoder.unets[0].cosine_sim_cross_attn"] = "false",
        ["decoder.unets[0].cosine_sim_self_attn"] = "false",
        ["decoder.unets[0].attend_at_middle"] = "true",
        ["decoder.unets[0].cond_on_text_encodings"] = "false",
        ["decoder.unets[0].max_text_len"] = "256",
        ["decoder.unets[0].cond_on_image_embeds"] = "false",
        ["decoder.unets[0].add_image_embeds_to_time"] = "true",
        ["decoder.unets[0].init_dim"] = "null",
        ["decoder.unets[0].init_conv_kernel_size"] = "7",
        ["decoder.unets[0].resnet_groups"] = "8",
        ["decoder.unets[0].resnet_weight_standardization"] = "false",
        ["decoder.unets[0].num_resnet_blocks"] = "2",
        ["decoder.unets[0].init_cross_embed"] = "true",
        ["decoder.unets[0].init_cross_embed_kernel_sizes"] = "[3,7,15]",
        ["decoder.unets[0].cross_embed_downsample"] = "false",
        ["decoder.unets[0].cross_embed_downsample_kernel_sizes"] = "[2,4]",
        ["decoder.unets[0].memory_efficient"] = "false",
        ["decoder.unets[0].scale_skip_connection"] = "false",
        ["decoder.unets[0].pixel_shuffle_upsample"] = "true",
        ["decoder.unets[0].final_conv_kernel_size"] = "1",
        ["decoder.unets[0].combine_upsample_fmaps"] = "false",
        ["decoder.unets[0].checkpoint_during_training"] = "false",
        // decoder (Decoder constructor, §3.1)
        ["decoder.image_size"] = "null",
        ["decoder.clip"] = "null",
        ["decoder.channels"] = "3",
        ["decoder.sample_timesteps"] = "null",
        ["decoder.sampler"] = "\"auto\"", // ours: upstream has no choice of sampler
        ["decoder.loss_type"] = "\"l2\"",
        ["decoder.beta_schedule"] = "null", // null → cosine, and linear for the last of several unets
        ["decoder.learned_variance"] = "true",
        ["decoder.learned_variance_constrain_frac"] = "false",
        ["decoder.vb_loss_weight"] = "0.001",
        ["decoder.image_cond_drop_prob"] = "0.1",
        ["decoder.text_cond_drop_prob"] = "0.5",
        ["decoder.predict_x_start"] = "false",
        ["decoder.predict_v"] = "false",
        ["decoder.predict_x_start_for_latent_diffusion"] = "false",
        ["decoder.random_crop_sizes"] = "null",
        ["decoder.use_noise_for_lowres_cond"] = "false",
        ["decoder.use_blur_for_lowres_cond"] = "true",
        ["decoder.lowres_downsample_first"] = "true",
        ["decoder.blur_prob"] = "0.5",
        ["decoder.blur_sigma"] = "0.6",
        ["decoder.blur_kernel_size"] = "3",
        ["decoder.lowres_noise_sample_level"] = "0.2",
        ["decoder.clip_denoised"] = "true",
        ["decoder.clip_x_start"] = "true",
        ["decoder.clip_adapter_overrides"] = "null", // upstream {}: same meaning
        ["decoder.unconditional"] = "false",
        ["decoder.auto_normalize_img"] = "true",
        ["decoder.use_dynamic_thres"] = "false",
        ["decoder.dynamic_thres_percentile"] = "0.95",
        ["decoder.p2_loss_weight_gamma"] = "0",
        ["decoder.p2_loss_weight_k"] = "1",
        ["decoder.ddim_sampling_eta"] = "0",
        // data (§10.4)
        ["data.text_embeddings_url"] = "null",
        ["data.num_workers"] = "4",
        ["data.batch_size"] = "64",
        ["data.start_shard"] = "0",
        ["data.end_shard"] = "9999999",
        ["data.shard_width"] = "6",
        ["data.index_width"] = "4",
        ["data.splits.train"] = "0.75", // upstream requires the splits object; its fields default to these
        ["data.splits.val"] = "0.15",
        ["data.splits.test"] = "0.1",
        ["data.shuffle_train"] = "true",
        ["data.resample_train"] = "false",
        ["data.preprocessing"] = "{\"ToTensor\":true}",
        ["data.reduced_decode"] = "true", // ours: DCT-scaled JPEG decode before the first resize
        ["data.max_image_pixels"] = "89478485", // ours: Pillow's decompression-bomb limit
        ["data.connect_timeout"] = "30", // ours: network waits are bounded
        ["data.stall_timeout"] = "120",
        // train (§10.5)
        ["train.epochs"] = "20",
        ["train.lr"] = "0.0001",
        ["train.wd"] = "0.01",
        ["train.warmup_steps"] = "null",
        ["train.find_unused_parameters"] = "true",
        ["train.static_graph"] = "true",
        ["train.max_grad_norm"] = "0.5",
        ["train.save_every_n_samples"] = "100000",
        ["train.n_sample_images"] = "6",
        ["train.cond_scale"] = "1",
        ["train.device"] = "\"cuda:0\"",
        ["train.epoch_samples"] = "null",
        ["train.validation_samples"] = "null",
        ["train.save_immediately"] = "false",
        ["train.use_ema"] = "true",
        ["train.ema_beta"] = "0.999", // the code's default (README says 0.99)
        ["train.amp"] = "false",
        ["train.unet_training_mask"] = "null",
        // evaluate (§10.6)
        ["evaluate.n_evaluation_samples"] = "1000",
        ["evaluate.weights_dir"] = "null", // ours: where the metric networks' weights are
        ["evaluate.FID"] = "null",
        ["evaluate.IS"] = "null",
        ["evaluate.KID"] = "null",
        ["evaluate.LPIPS"] = "null",
        // tracker (§10.7)
        ["tracker.data_path"] = "\".tracker_data\"", // TrackerConfig's default (README: ./.tracker-data)
        ["tracker.overwrite_data_path"] = "false",
        ["tracker.log.resume"] = "false",
        ["tracker.log.auto_resume"] = "false",
        ["tracker.log.verbose"] = "false",
        ["tracker.load"] = "null",
        ["tracker.save[0].save_best_to"] = "null",
        ["tracker.save[0].save_meta_to"] = "null",
        ["tracker.save[0].save_type"] = "\"checkpoint\"",
        ["tracker.save[0].save_all"] = "false",
        ["tracker.save[0].save_latest"] = "true",
        ["tracker.save[0].save_best"] = "true",
    };

    private static readonly string[] GivenByFixture =
    [
        "decoder.unets[0].dim", "decoder.unets[0].image_embed_dim", "decoder.unets[0].cond_dim", "decoder.unets[0].dim_mults",
        "decoder.image_sizes", "decoder.timesteps", "data.webdataset_base_url", "data.img_embeddings_url",
        "tracker.log.log_type", "tracker.save[0].save_to", "tracker.save[0].save_latest_to",
    ];

    [Fact]
    public void EveryOmittedOptionResolvesToUpstreamsDefault()
    {
        var shown = JsonNode.Parse(ConfigWriter.ToJson(new ConfigFixture().Load()))!;
        var leaves = Leaves(shown, "").ToDictionary();
        foreach (var (path, expected) in UpstreamDefaults)
        {
            Assert.True(leaves.ContainsKey(path), $"{path} is not in the resolved config");
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), leaves[path]) || SameNumber(expected, leaves[path]),
                $"{path}: default {leaves[path]?.ToJsonString() ?? "null"}, upstream's {expected}");
        }
        // Every option is covered: a new option must come with its upstream default here.
        var uncovered = leaves.Keys.Except(UpstreamDefaults.Keys).Except(GivenByFixture).ToArray();
        Assert.True(uncovered.Length == 0, "options without a default check: " + string.Join(", ", uncovered));
    }

    [Fact]
    public void MetricOptionDefaultsAreTorchmetrics()
    {
        var c = new ConfigFixture().Set("evaluate", JsonNode.Parse("""{ "FID": {}, "IS": {}, "KID": {}, "LPIPS": {} }""")).Load();
        Assert.Equal(2048, c.Evaluate.FID!.Feature);
        Assert.Equal("logits_unbiased", c.Evaluate.IS!.Feature);
        Assert.Equal(10, c.Evaluate.IS.Splits);
        Assert.Equal((2048, 100, 1000, 3, (double?)null, 1.0), (c.Evaluate.KID!.Feature, c.Evaluate.KID.Subsets, c.Evaluate.KID.SubsetSize, c.Evaluate.KID.Degree, c.Evaluate.KID.Gamma, c.Evaluate.KID.Coef));
        Assert.Equal(("alex", "mean"), (c.Evaluate.LPIPS!.NetType, c.Evaluate.LPIPS.Reduction));
    }

    [Fact]
    public void UnetDimMultsDefaultsToTheUnetConstructors()
    {
        var c = new ConfigFixture().Remove("decoder.unets[0].dim_mults").Load();
        Assert.Equal([1, 2, 4, 8], c.Decoder.Unets[0].DimMults);
    }

    [Fact]
    public void TransformDefaultsAreTorchvisions()
    {
        var c = new ConfigFixture().Set("data.preprocessing", JsonNode.Parse("""{ "RandomResizedCrop": { "size": 64 }, "RandomHorizontalFlip": true }""")).Load();
        var crop = Assert.IsType<RandomResizedCropConfig>(c.Data.Preprocessing.Steps[0]);
        Assert.Equal([0.08, 1.0], crop.Scale);
        Assert.Equal([3.0 / 4.0, 4.0 / 3.0], crop.Ratio);
        Assert.Equal("bilinear", crop.Interpolation);
        Assert.Equal(0.5, Assert.IsType<RandomHorizontalFlipConfig>(c.Data.Preprocessing.Steps[1]).P);
    }

    private static bool SameNumber(string expected, JsonNode? actual) =>
        double.TryParse(expected, out var e) && actual is JsonValue v && v.TryGetValue<double>(out var a) && a == e;

    private static IEnumerable<KeyValuePair<string, JsonNode?>> Leaves(JsonNode? node, string path)
    {
        // Sections (objects with a fixed key set) are walked; values (numbers, lists, free-form maps) are leaves.
        if (node is JsonObject obj && path != "data.preprocessing" && !path.EndsWith("overrides"))
        {
            foreach (var (k, v) in obj)
                foreach (var leaf in Leaves(v, path.Length == 0 ? k : $"{path}.{k}")) yield return leaf;
        }
        else if (node is JsonArray arr && arr.Count > 0 && arr[0] is JsonObject)
        {
            for (int i = 0; i < arr.Count; i++)
                foreach (var leaf in Leaves(arr[i], $"{path}[{i}]")) yield return leaf;
        }
        else yield return new(path, node);
    }
}
