using System.Text;
using Dalle2Sharp.Config;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Tests.Servers;
using Dalle2Sharp.Tracking;

namespace Dalle2Sharp.Tests.Tracking;

/// <summary>
/// The Hugging Face saver against <see cref="HubServer"/> (a stand-in checking the commit, LFS batch,
/// basic and multipart transfers as huggingface_hub sends them), and the TensorBoard logger's event files.
/// </summary>
[Collection("Services")]
public sealed class HubAndTensorBoardTests
{
    private static readonly IoTimeouts Quick = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), Retries: 2);

    private static TrackerConfig HubConfig(string dataPath) => new()
    {
        DataPath = dataPath, OverwriteDataPath = true,
        Save = [new TrackerSaveConfig
        {
            SaveTo = "huggingface", HuggingfaceRepo = "owner/decoder", SaveLatestTo = "model_dir/latest_{epoch}.pth", SaveBestTo = "model_dir/best.pth",
            SaveMetaTo = "meta", SaveType = "checkpoint",
        }],
    };

    private static string File(string path, int size)
    {
        System.IO.File.WriteAllBytes(path, Enumerable.Range(0, size).Select(i => (byte)(i * 31 + size)).ToArray());
        return path;
    }

    [Fact]
    public void SavesBecomeCommitsWithRegularLfsAndMultipartUploadsAndLoadBack()
    {
        using var server = new HubServer();
        using var dir = new TestPaths.TempDir();
        using var env = new EnvScope(EnvScope.Of(server.Environment));
        var small = File(dir.File("small.pth"), 500);          // regular: inline in the commit
        var medium = File(dir.File("medium.pth"), 20_000);     // LFS, basic transfer
        var large = File(dir.File("large.pth"), 100_000);      // LFS, multipart (7 parts of 16 KiB)
        var config = File(dir.File("decoder_config.json"), 300);
        var printed = new List<string>();
        // A dropped connection during one LFS part: the part is sent again.
        server.Fault(r => r.Path.Contains("/part/3"), "drop");
        using (var tracker = RunTracker.Start(HubConfig(dir.File("run")), false, printed.Add, timeouts: Quick))
        {
            tracker.SaveConfig(config);
            tracker.Save(small, () => "", new Dictionary<string, object> { ["epoch"] = 0 }, isBest: false, "Epoch 0: small");
            tracker.Save(medium, () => "", new Dictionary<string, object> { ["epoch"] = 1 }, isBest: false, "Epoch 1: medium");
            tracker.Save(large, () => "", new Dictionary<string, object> { ["epoch"] = 2 }, isBest: true, "Epoch 2: large");
            tracker.Finish(0);
        }
        var repo = server.Repos["owner/decoder"];
        Assert.Equal(System.IO.File.ReadAllBytes(small), repo.Files["model_dir/latest_0.pth"]);
        Assert.Equal(System.IO.File.ReadAllBytes(medium), repo.Files["model_dir/latest_1.pth"]);
        Assert.Equal(System.IO.File.ReadAllBytes(large), repo.Files["model_dir/latest_2.pth"]);
        Assert.Equal(System.IO.File.ReadAllBytes(large), repo.Files["model_dir/best.pth"]);
        Assert.Equal(System.IO.File.ReadAllBytes(config), repo.Files["meta/decoder_config.json"]);
        Assert.Contains(repo.Commits, c => c.Summary == "Epoch 2: large (best)" && c.Paths.SequenceEqual(["model_dir/best.pth"]));
        Assert.Contains(repo.Commits, c => c.Summary == "Epoch 0: small");
        Assert.Contains(server.Requests, r => r.Path.EndsWith("/commit/main") && r.Text.Contains("\"key\":\"file\"") && r.Text.Contains("latest_0.pth"));
        var requests = server.Requests;
        Assert.Contains(requests, r => r.Path == "/api/repos/create");
        Assert.Contains(requests, r => r.Method == "PUT" && r.Path == $"/lfs-storage/{Sha(medium)}");
        // 7 parts and the dropped one again.
        Assert.True(requests.Count(r => r.Method == "PUT" && r.Path.StartsWith($"/lfs-storage/{Sha(large)}/part/")) >= 8);
        Assert.Equal(2, requests.Count(r => r.Method == "PUT" && r.Path == $"/lfs-storage/{Sha(large)}/part/3"));
        Assert.Contains(requests, r => r.Path == $"/lfs-complete/{Sha(large)}");
        Assert.Contains(requests, r => r.Path.EndsWith("/objects/verify"));
        Assert.Contains(requests, r => r.Path.EndsWith("/commit/main") && r.Text.Contains("\"key\":\"lfsFile\"") && r.Text.Contains(Sha(medium)));
        // The token goes to the Hub's API only, and nothing the run wrote or printed holds it.
        Assert.All(requests.Where(r => r.Path.StartsWith("/lfs-storage/")), r => Assert.Null(r.Header("authorization")));
        foreach (var f in Directory.GetFiles(dir.File("run"), "*", SearchOption.AllDirectories))
            Assert.DoesNotContain(server.Token, System.IO.File.ReadAllText(f, Encoding.Latin1));
        Assert.DoesNotContain(printed, l => l.Contains(server.Token));

        // load_from url of a Hub resolve URL: downloaded with the token, byte for byte.
        var load = new TrackerConfig
        {
            DataPath = dir.File("load"), Load = new TrackerLoadConfig { LoadFrom = "url", Url = $"{server.Url}/owner/decoder/resolve/main/model_dir/latest_2.pth" },
        };
        Assert.Equal(System.IO.File.ReadAllBytes(large), System.IO.File.ReadAllBytes(CheckpointLoader.Resolve(load, _ => { })!));
    }

    private static IReadOnlyList<RecordedRequest> requests0(HubServer server) => server.Requests;

    private static string Sha(string file) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.IO.File.ReadAllBytes(file)));

    [Fact]
    public void AFailedCommitIsRetriedLaterAndAWrongTokenStopsAtStart()
    {
        using var server = new HubServer();
        using var dir = new TestPaths.TempDir();
        using (new EnvScope(EnvScope.Of(server.Environment), new Dictionary<string, string?> { ["HF_TOKEN"] = "hf_wrong" }))
        {
            var e = Assert.Throws<UserInputException>(() => RunTracker.Start(HubConfig(dir.File("a")), false, _ => { }, timeouts: Quick));
            Assert.Contains("401", e.Message);
            Assert.DoesNotContain("hf_wrong", e.Message);
        }
        using var env = new EnvScope(EnvScope.Of(server.Environment));
        var file = File(dir.File("ckpt.pth"), 3000);
        server.Fault(r => r.Path.EndsWith("/commit/main"), "500", times: 2);
        var printed = new List<string>();
        using (var tracker = RunTracker.Start(HubConfig(dir.File("run")), false, printed.Add, timeouts: Quick))
        {
            tracker.Save(file, () => "", new Dictionary<string, object> { ["epoch"] = 0 }, isBest: false, "retry me");
            tracker.Finish(0);
        }
        Assert.Equal(System.IO.File.ReadAllBytes(file), server.Repos["owner/decoder"].Files["model_dir/latest_0.pth"]);
        Assert.True(System.IO.File.Exists(file));   // the local checkpoint stays
    }

    [Fact]
    public void TensorBoardEventFilesHoldScalarsImagesAndTheConfig()
    {
        using var dir = new TestPaths.TempDir();
        var png = dir.File("img.png");
        System.IO.File.WriteAllBytes(png, Dalle2Sharp.Data.ImageDecoder.EncodePng(new Dalle2Sharp.Data.RgbImage(2, 2, new byte[12])));
        var config = new TrackerConfig { DataPath = dir.File("run"), Log = new TrackerLogConfig { LogType = "tensorboard" } };
        using (var tracker = RunTracker.Start(config, false, _ => { }, new System.Text.Json.Nodes.JsonObject { ["seed"] = 5 }))
        {
            tracker.Log(new Dictionary<string, object?> { ["Unet 0 Training Loss"] = 0.25, ["Epoch"] = 1 }, step: 7);
            tracker.LogImages("Train Samples", [new LoggedImage(png, "Train: x", 2, 2)], step: 7);
            tracker.Finish(0);
        }
        var events = TensorBoardEvents.Read(Directory.GetFiles(dir.File("run/tensorboard"), "events.out.tfevents.*").Single());
        var values = events.Where(e => e.Summary is not null).SelectMany(e => e.Summary.Value.Select(v => (e.Step, v))).ToList();
        Assert.Contains(values, x => x.v.Tag == "Unet 0 Training Loss" && x.Step == 7 && Math.Abs(x.v.SimpleValue - 0.25f) < 1e-7);
        Assert.Contains(values, x => x.v.Tag == "Train Samples/0" && x.v.Image is not null && x.v.Image.Height == 2);
        Assert.Contains(values, x => x.v.Tag.StartsWith("config") && (x.v.Tensor?.StringVal.Any(s => s.ToStringUtf8().Contains("\"seed\": 5")) ?? false));
    }
}

/// <summary>
/// Reads TensorBoard event files as TensorBoard does: TFRecord framing (length, masked CRC-32C of the
/// length, data, masked CRC-32C of the data), every CRC checked, each record an Event protobuf.
/// </summary>
public static class TensorBoardEvents
{
    public static List<Tensorboard.Event> Read(string path)
    {
        var bytes = System.IO.File.ReadAllBytes(path);
        var events = new List<Tensorboard.Event>();
        for (int at = 0; at < bytes.Length;)
        {
            ulong length = BitConverter.ToUInt64(bytes, at);
            Assert.Equal(Masked(bytes.AsSpan(at, 8)), BitConverter.ToUInt32(bytes, at + 8));
            var data = bytes.AsSpan(at + 12, (int)length);
            Assert.Equal(Masked(data), BitConverter.ToUInt32(bytes, at + 12 + (int)length));
            events.Add(Tensorboard.Event.Parser.ParseFrom(data.ToArray()));
            at += 12 + (int)length + 4;
        }
        return events;
    }

    private static uint Masked(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
        }
        crc = ~crc;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8;
    }
}
