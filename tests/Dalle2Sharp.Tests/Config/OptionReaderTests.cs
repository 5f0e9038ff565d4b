using System.Text.RegularExpressions;
using Dalle2Sharp.Config;

namespace Dalle2Sharp.Tests.Config;

/// <summary>No option is accepted and ignored: every config property is read outside the Config folder, or listed here with the reason.</summary>
public class OptionReaderTests
{
    /// <summary>Options read only by validation or by a component in another form, with why.</summary>
    public static readonly Dictionary<string, string> NotReadByTheRun = new()
    {
        ["decoder.unets.out_dim"] = "upstream's Unet takes it and never uses it (channels_out decides)",
        ["decoder.unets.attend_at_middle"] = "upstream's Unet takes it and never uses it (vectors: 05_option_attend_at_middle_false equals the baseline)",
        ["decoder.clip.base_model_kwargs"] = "decoder.clip is refused at start until CLIP is built (issue 12)",
        ["decoder.clip_adapter_overrides"] = "decoder.clip is refused at start until CLIP is built (issue 12)",
        ["decoder.beta_schedule"] = "read through DecoderConfig.BetaSchedulePerUnet (upstream's per-unet defaults)",
        ["decoder.predict_x_start_for_latent_diffusion"] = "only for VQGAN-VAE latent unets, which are not supported",
        ["decoder.clip_denoised"] = "upstream's Decoder stores it and never reads it: sampling clips whenever the unet is not latent, as ours does",
        ["decoder.clip_x_start"] = "upstream's Decoder stores it and never reads it",
        ["data.connect_timeout"] = "read through DataConfig.Timeouts, used by every data source",
        ["data.stall_timeout"] = "read through DataConfig.Timeouts, used by every data source",
        ["train.find_unused_parameters"] = "a torch DistributedDataParallel setting; nothing here corresponds to it",
        ["train.static_graph"] = "a torch DistributedDataParallel setting; nothing here corresponds to it",
        ["evaluate.FID.reset_real_features"] = "upstream builds a new metric per evaluation, so real features are recomputed every time whatever the flag; so do we",
        ["evaluate.KID.reset_real_features"] = "upstream builds a new metric per evaluation, so real features are recomputed every time whatever the flag; so do we",
        ["evaluate.FID.normalize"] = "validation refuses true (it would rescale upstream's uint8 inputs a second time)",
        ["evaluate.IS.normalize"] = "validation refuses true (it would rescale upstream's uint8 inputs a second time)",
        ["evaluate.KID.normalize"] = "validation refuses true (it would rescale upstream's uint8 inputs a second time)",
        ["evaluate.LPIPS.normalize"] = "validation refuses true (it would rescale upstream's [-1, 1] inputs a second time)",
        ["tracker.log.verbose"] = "every record is printed whatever it says (upstream's console logger does so too; its wandb logger " +
                                  "prints only with verbose, ours always)",
        ["tracker.save.save_all"] = "upstream's TrackerSaveConfig declares it and its savers never read it (save_latest_to / save_best_to decide)",
        ["tracker.save.save_latest"] = "upstream's TrackerSaveConfig declares it and its savers never read it (save_latest_to decides)",
        ["tracker.save.save_best"] = "upstream's TrackerSaveConfig declares it and its savers never read it (save_best_to decides)",
    };

    private static IEnumerable<(string Path, ConfigMember Member)> Walk(Type type, string path)
    {
        foreach (var member in ConfigMetadata.Members(type))
        {
            string p = path.Length == 0 ? member.Key : $"{path}.{member.Key}";
            yield return (p, member);
            var t = Nullable.GetUnderlyingType(member.Type) ?? member.Type;
            var element = ConfigMetadata.ListElement(t) ?? t;
            if (ConfigMetadata.IsSection(element) && element != type)
                foreach (var inner in Walk(element, p)) yield return inner;
        }
    }

    [Fact]
    public void EveryOptionHasAReaderOrADocumentedReason()
    {
        var src = Path.Combine(TestPaths.RepoRoot, "src");
        var code = string.Join("\n", Directory.GetFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}Config{Path.DirectorySeparatorChar}"))
            .Select(File.ReadAllText));
        var options = Walk(typeof(TrainDecoderConfig), "").ToList();
        Assert.True(options.Count > 100, $"walked only {options.Count} options");
        var unread = options
            .Where(o => !ConfigMetadata.IsSection(Nullable.GetUnderlyingType(o.Member.Type) ?? o.Member.Type))
            // A property read, not a method of the same name (string.Normalize(…) is not evaluate.*.normalize).
            .Where(o => !Regex.IsMatch(code, $@"\.{o.Member.Property.Name}\b(?!\s*\()"))
            .Select(o => o.Path).Distinct().ToList();
        var undocumented = unread.Where(p => !NotReadByTheRun.ContainsKey(p)).ToList();
        Assert.True(undocumented.Count == 0, "options with no reader and no documented reason: " + string.Join(", ", undocumented));
        var stale = NotReadByTheRun.Keys.Where(k => !unread.Contains(k)).ToList();
        Assert.True(stale.Count == 0, "documented as unread but now read: " + string.Join(", ", stale));
    }
}
