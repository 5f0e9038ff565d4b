namespace Dalle2Sharp.Config;

/// <summary>
/// One Unet of the cascade (decoder.unets[i]). Every constructor argument of DALLE2-pytorch's Unet
/// is an option here; upstream passes unknown keys through and its Unet swallows them, we reject them.
/// </summary>
public sealed class UnetConfig : ConfigSection
{
    [Key("dim", "Base channel width."), Required]
    public int Dim { get; set; }

    [Key("image_embed_dim", "Size of the CLIP image embedding (needed by the first unet, which is image-conditioned).")]
    public int? ImageEmbedDim { get; set; }

    [Key("text_embed_dim", "Width of per-token text encodings; required with cond_on_text_encodings.")]
    public int? TextEmbedDim { get; set; }

    [Key("cond_dim", "Width of the conditioning tokens used by cross-attention (null = dim).")]
    public int? CondDim { get; set; }

    [Key("num_image_tokens", "Number of cond tokens the image embedding is projected to.")]
    public int NumImageTokens { get; set; } = 4;

    [Key("num_time_tokens", "Number of cond tokens the time embedding is projected to.")]
    public int NumTimeTokens { get; set; } = 2;

    [Key("out_dim", "Accepted for compatibility; upstream never uses it (the output width is channels_out).")]
    public int? OutDim { get; set; }

    [Key("dim_mults", "Stage widths as multiples of dim. Upstream's config requires it; its Unet defaults to [1,2,4,8], which we use.")]
    public List<int> DimMults { get; set; } = [1, 2, 4, 8];

    [Key("channels", "Image channels (the decoder re-casts this to its own channels).")]
    public int Channels { get; set; } = 3;

    [Key("channels_out", "Output channels (null = channels; the decoder sets channels·2 with learned variance).")]
    public int? ChannelsOut { get; set; }

    [Key("self_attn", "Full self-attention per stage: true/false for all stages or one per stage.")]
    public ScalarOrList<bool> SelfAttn { get; set; } = false;

    [Key("attn_dim_head", "Head width of self-attention and linear attention.")]
    public int AttnDimHead { get; set; } = 32;

    [Key("attn_heads", "Heads of self-attention and linear attention.")]
    public int AttnHeads { get; set; } = 16;

    [Key("lowres_cond", "Condition on a low-resolution image (the decoder sets it for unets after the first).")]
    public bool LowresCond { get; set; }

    [Key("lowres_noise_cond", "Embed the low-res augmentation noise level (the decoder sets it).")]
    public bool LowresNoiseCond { get; set; }

    [Key("self_cond", "Self-conditioning on a previous x0 prediction.")]
    public bool SelfCond { get; set; }

    [Key("sparse_attn", "Linear attention on stages without full self-attention.")]
    public bool SparseAttn { get; set; }

    [Key("cosine_sim_cross_attn", "Cosine-similarity attention (scale 16) in the resnet blocks' cross-attention.")]
    public bool CosineSimCrossAttn { get; set; }

    [Key("cosine_sim_self_attn", "Cosine-similarity attention (scale 16) in self-attention.")]
    public bool CosineSimSelfAttn { get; set; }

    [Key("attend_at_middle", "Accepted for compatibility; upstream always applies the middle attention.")]
    public bool AttendAtMiddle { get; set; } = true;

    [Key("cond_on_text_encodings", "Condition on per-token text encodings.")]
    public bool CondOnTextEncodings { get; set; }

    [Key("max_text_len", "Text tokens are truncated or padded to this length.")]
    public int MaxTextLen { get; set; } = 256;

    [Key("cond_on_image_embeds", "Condition on the image embedding (the decoder forces it for the first unet only).")]
    public bool CondOnImageEmbeds { get; set; }

    [Key("add_image_embeds_to_time", "Also add a projection of the image embedding to the time vector.")]
    public bool AddImageEmbedsToTime { get; set; } = true;

    [Key("init_dim", "Width after the initial conv (null = dim; must equal dim).")]
    public int? InitDim { get; set; }

    [Key("init_conv_kernel_size", "Kernel of the plain initial conv (used when init_cross_embed is false).")]
    public int InitConvKernelSize { get; set; } = 7;

    [Key("resnet_groups", "GroupNorm groups: one value or one per stage.")]
    public ScalarOrList<int> ResnetGroups { get; set; } = 8;

    [Key("resnet_weight_standardization", "Weight-standardised 3×3 convs in the resnet blocks.")]
    public bool ResnetWeightStandardization { get; set; }

    [Key("num_resnet_blocks", "Resnet blocks per stage: one value or one per stage.")]
    public ScalarOrList<int> NumResnetBlocks { get; set; } = 2;

    [Key("init_cross_embed", "Initial conv is a multi-kernel CrossEmbedLayer.")]
    public bool InitCrossEmbed { get; set; } = true;

    [Key("init_cross_embed_kernel_sizes", "Kernels of the initial CrossEmbedLayer (odd).")]
    public List<int> InitCrossEmbedKernelSizes { get; set; } = [3, 7, 15];

    [Key("cross_embed_downsample", "Downsample with a stride-2 CrossEmbedLayer instead of pixel-unshuffle + 1×1 conv.")]
    public bool CrossEmbedDownsample { get; set; }

    [Key("cross_embed_downsample_kernel_sizes", "Kernels of the CrossEmbedLayer downsample (even).")]
    public List<int> CrossEmbedDownsampleKernelSizes { get; set; } = [2, 4];

    [Key("memory_efficient", "Downsample at the start of each stage (saves memory at high resolution).")]
    public bool MemoryEfficient { get; set; }

    [Key("scale_skip_connection", "Scale skip connections by 2^-0.5.")]
    public bool ScaleSkipConnection { get; set; }

    [Key("pixel_shuffle_upsample", "Upsample with 1×1 conv + PixelShuffle (else nearest ×2 + 3×3 conv).")]
    public bool PixelShuffleUpsample { get; set; } = true;

    [Key("final_conv_kernel_size", "Kernel of the output conv.")]
    public int FinalConvKernelSize { get; set; } = 1;

    [Key("combine_upsample_fmaps", "Concatenate resized feature maps of every up stage before the output (UpsampleCombiner).")]
    public bool CombineUpsampleFmaps { get; set; }

    [Key("checkpoint_during_training", "Gradient checkpointing of resnet blocks while training (less memory, same numbers).")]
    public bool CheckpointDuringTraining { get; set; }

    /// <summary>A copy whose changes do not touch this config (the decoder re-casts unets this way).</summary>
    public UnetConfig Clone() => (UnetConfig)MemberwiseClone();
}
