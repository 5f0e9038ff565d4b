using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Dalle2Sharp.Config;
using Dalle2Sharp.Runtime;
using Dalle2Sharp.Tests.Servers;
using Dalle2Sharp.Tracking;

namespace Dalle2Sharp.Tests.Tracking;

/// <summary>
/// The wandb logger, saver and loader against <see cref="WandbServer"/>, a stand-in that checks what
/// wandb's own client sends (GraphQL operations, basic auth, file_stream offsets, credential-free PUTs).
/// </summary>
[Collection("Services")]
public sealed class WandbTrackerTests
{
    private static readonly IoTimeouts Quick = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), Retries: 1);

    private static TrackerConfig Config(string dataPath, bool autoResume = false) => new()
    {
        DataPath = dataPath, OverwriteDataPath = true,
        Log = new TrackerLogConfig { LogType = "wandb", WandbEntity = "team", WandbProject = "proj", WandbRunName = "smoke", AutoResume = autoResume },
        Save = [new TrackerSaveConfig { SaveTo = "wandb", SaveLatestTo = "checkpoints/latest_{epoch}.pth" }],
    };

    private static EnvScope Online(WandbServer server) =>
        new(EnvScope.Of(server.Environment), new Dictionary<string, string?> { ["NETRC"] = "/nonexistent" });

    private static string WritePng(string path, int shade)
    {
        var pixels = Enumerable.Repeat((byte)shade, 4 * 3 * 3).ToArray();
        File.WriteAllBytes(path, Dalle2Sharp.Data.ImageDecoder.EncodePng(new Dalle2Sharp.Data.RgbImage(4, 3, pixels)));
        return path;
    }

    [Fact]
    public void ARunSendsHistoryImagesConsoleFilesAndItsEnd()
    {
        using var server = new WandbServer();
        using var dir = new TestPaths.TempDir();
        using var env = Online(server);
        var printed = new List<string>();
        var checkpoint = dir.File("checkpoint.pth");
        File.WriteAllBytes(checkpoint, Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray());
        using (var tracker = RunTracker.Start(Config(dir.File("run")), resuming: false, printed.Add,
                   new JsonObject { ["train"] = new JsonObject { ["lr"] = 1e-4 } }))
        {
            tracker.Log(new Dictionary<string, object?> { ["Unet 0 Training Loss"] = 0.5, ["Epoch"] = 0 }, step: 1);
            tracker.Log(new Dictionary<string, object?> { ["Samples per second"] = 12.5 }, step: 1);   // same step: same row
            tracker.LogImages("Train Samples", [new LoggedImage(WritePng(dir.File("a.png"), 10), "Train: cat", 4, 3),
                                                new LoggedImage(WritePng(dir.File("b.png"), 200), "Train: dog", 4, 3)], step: 2);
            tracker.Log(new Dictionary<string, object?> { ["Unet 0 Validation Loss"] = double.NaN }, step: 2);
            tracker.Save(checkpoint, () => throw new InvalidOperationException("model file not needed"),
                new Dictionary<string, object> { ["epoch"] = 3 }, isBest: false, "test save");
            tracker.Print("hello from the run");
            tracker.Finish(0);
        }

        var run = server.Get("proj", Assert.Single(server.Runs.Values).Name);
        Assert.Equal("team", run.Entity);
        Assert.Equal("smoke", run.DisplayName);
        // The config as wandb stores it, with upstream's extra_config and the client's _wandb.t.
        Assert.Equal(1e-4, run.Config["train"]!["value"]!["lr"]!.GetValue<double>());
        Assert.Equal(1, run.Config["NumProcesses"]!["value"]!.GetValue<int>());
        Assert.NotNull(run.Config["_wandb"]!["value"]!["t"]);

        var rows = run.History.Select(WandbServer.ParseLine).ToList();
        Assert.True(rows.Count == 2, string.Join("\n", printed));
        Assert.Equal(1, rows[0]["_step"]!.GetValue<long>());
        Assert.Equal(0.5, rows[0]["Unet 0 Training Loss"]!.GetValue<double>());
        Assert.Equal(12.5, rows[0]["Samples per second"]!.GetValue<double>());
        Assert.True(rows[0]["_timestamp"]!.GetValue<double>() > 1.7e9);
        Assert.True(rows[0].ContainsKey("_runtime"));
        var images = rows[1]["Train Samples"]!.AsObject();
        Assert.Equal("images/separated", images["_type"]!.GetValue<string>());
        Assert.Equal(2, images["count"]!.GetValue<int>());
        Assert.Equal((4, 3, "png"), (images["width"]!.GetValue<int>(), images["height"]!.GetValue<int>(), images["format"]!.GetValue<string>()));
        Assert.Equal(["Train: cat", "Train: dog"], images["captions"]!.AsArray().Select(c => c!.GetValue<string>()));
        var names = images["filenames"]!.AsArray().Select(f => f!.GetValue<string>()).ToList();
        Assert.All(names, n => Assert.Matches(@"^media/images/Train Samples_2_[0-9a-f]{20}\.png$", n));
        Assert.Equal(File.ReadAllBytes(dir.File("a.png")), run.Files[names[0]]);
        Assert.Equal(File.ReadAllBytes(dir.File("b.png")), run.Files[names[1]]);
        Assert.Contains("\"Unet 0 Validation Loss\":NaN", run.History[1]);   // bare NaN, as wandb's core writes it

        // wandb.save with base_path = data_path: the copy in data_path and the run file hold the checkpoint's bytes.
        Assert.Equal(File.ReadAllBytes(checkpoint), run.Files["checkpoints/latest_3.pth"]);
        Assert.Equal(File.ReadAllBytes(checkpoint), File.ReadAllBytes(dir.File("run/checkpoints/latest_3.pth")));
        Assert.Contains("checkpoints/latest_3.pth", run.Uploaded);
        Assert.Contains(run.Output, l => Regex.IsMatch(l, @"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6} hello from the run$"));
        Assert.Equal(0.5, run.Summary["Unet 0 Training Loss"]!.GetValue<double>());
        Assert.True(run.Complete);
        Assert.Equal(0, run.ExitCode);

        // Credentials: basic auth on the API, none on storage PUTs (which carry the server's upload headers).
        var requests = server.Requests;
        Assert.Contains("operationName\":\"Viewer", requests.First(r => r.Path == "/graphql").Text);
        Assert.All(requests.Where(r => r.Path == "/graphql" || r.Path.EndsWith("file_stream")), r => Assert.StartsWith("Basic ", r.Header("authorization")));
        Assert.All(requests.Where(r => r.Method == "PUT"), r => Assert.Equal("present", r.Header("x-stand-in-header")));
        // Nothing the run wrote holds the API key.
        foreach (var file in Directory.GetFiles(dir.File("run"), "*", SearchOption.AllDirectories))
            Assert.DoesNotContain(server.ApiKey, File.ReadAllText(file));
        Assert.DoesNotContain(printed, l => l.Contains(server.ApiKey));
    }

    [Fact]
    public void AnOutageMidRunIsQueuedOnDiskAndDeliveredInOrder()
    {
        using var server = new WandbServer();
        using var dir = new TestPaths.TempDir();
        using var env = Online(server);
        var printed = new List<string>();
        using (var tracker = RunTracker.Start(Config(dir.File("run")), resuming: false, printed.Add, timeouts: Quick))
        {
            server.Down = true;
            for (int step = 1; step <= 40; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = 1.0 / step }, step);
            tracker.Print("during the outage");
            Thread.Sleep(TimeSpan.FromSeconds(4));
            // Everything is in the journal on disk while the service is down.
            var journal = Directory.GetFiles(dir.File("run/wandb"), Outbox.JournalName, SearchOption.AllDirectories).Single();
            Assert.True(File.ReadAllLines(journal).Length >= 40);
            Assert.Contains(printed, l => l.Contains("cannot be reached") && l.Contains("retrying while training goes on"));
            server.Down = false;
            tracker.Log(new Dictionary<string, object?> { ["loss"] = 0.0 }, 41);
            tracker.Finish(0);
        }
        var run = Assert.Single(server.Runs.Values);
        var steps = run.History.Select(h => JsonNode.Parse(h)!["_step"]!.GetValue<long>()).ToList();
        Assert.Equal(Enumerable.Range(1, 41).Select(i => (long)i), steps);
        Assert.Contains(run.Output, l => l.EndsWith("during the outage"));
        Assert.True(run.Complete);
    }

    [Fact]
    public void AStalledAndFailingServerIsRetriedWithoutLosingALine()
    {
        using var server = new WandbServer();
        using var dir = new TestPaths.TempDir();
        using var env = Online(server);
        server.Fault(r => r.Path.EndsWith("file_stream"), "stall", times: 1);
        server.Fault(r => r.Path.EndsWith("file_stream"), "500", times: 2);
        using (var tracker = RunTracker.Start(Config(dir.File("run")), resuming: false, _ => { }, timeouts: Quick))
        {
            for (int step = 1; step <= 5; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = step }, step);
            tracker.Finish(0);
        }
        var run = Assert.Single(server.Runs.Values);
        Assert.Equal(5, run.History.Count);
        Assert.True(run.Complete);
    }

    [Fact]
    public void AutoResumeContinuesTheSameRunAndLoadFromWandbRestoresItsFile()
    {
        using var server = new WandbServer();
        using var dir = new TestPaths.TempDir();
        using var env = Online(server);
        var checkpoint = dir.File("checkpoint.pth");
        File.WriteAllBytes(checkpoint, Enumerable.Range(0, 3000).Select(i => (byte)(i * 7)).ToArray());
        string runId;
        using (var tracker = RunTracker.Start(Config(dir.File("run"), autoResume: true), resuming: false, _ => { }))
        {
            for (int step = 1; step <= 3; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = step }, step);
            tracker.Save(checkpoint, () => "", new Dictionary<string, object> { ["epoch"] = 0 }, isBest: false, "save");
            tracker.RecordCheckpoint(checkpoint);
            runId = tracker.Logger!.ResumeData["run_id"];
            tracker.Finish(1);
        }
        Assert.Equal(1, server.Get("proj", runId).ExitCode);
        Assert.Contains("WandbLogger", File.ReadAllText(dir.File("run/run.json")));
        using (var tracker = RunTracker.Start(Config(dir.File("run"), autoResume: true), resuming: true, _ => { }))
        {
            Assert.Equal(runId, tracker.Logger!.ResumeData["run_id"]);
            for (int step = 4; step <= 5; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = step }, step);
            tracker.Finish(0);
        }
        var run = Assert.Single(server.Runs.Values);
        Assert.Equal([1L, 2, 3, 4, 5], run.History.Select(h => JsonNode.Parse(h)!["_step"]!.GetValue<long>()));
        Assert.Equal(0, run.ExitCode);

        // load_from wandb (wandb.restore): the saved file back, byte for byte, into data_path.
        var load = new TrackerConfig
        {
            DataPath = dir.File("other"),
            Load = new TrackerLoadConfig { LoadFrom = "wandb", WandbFilePath = "checkpoints/latest_0.pth", WandbRunPath = $"team/proj/{runId}" },
        };
        var restored = CheckpointLoader.Resolve(load, _ => { })!;
        Assert.Equal(File.ReadAllBytes(checkpoint), File.ReadAllBytes(restored));
        load.Load.WandbFilePath = "missing.pth";
        Assert.Contains("has no file missing.pth", Assert.Throws<UserInputException>(() => CheckpointLoader.Resolve(load, _ => { })).Message);
    }

    [Fact]
    public void NoKeyOrNoServerStopsBeforeAnyWorkAndOfflineRunsSyncLater()
    {
        using var server = new WandbServer();
        using var dir = new TestPaths.TempDir();
        using (new EnvScope(new Dictionary<string, string?>
               { ["WANDB_API_KEY"] = null, ["NETRC"] = "/nonexistent", ["WANDB_BASE_URL"] = server.Url, ["WANDB_MODE"] = null, ["HOME"] = dir.Path }))
            Assert.Contains("no API key", Assert.Throws<UserInputException>(() => RunTracker.Start(Config(dir.File("a")), false, _ => { })).Message);

        using (new EnvScope(EnvScope.Of(server.Environment), new Dictionary<string, string?> { ["WANDB_BASE_URL"] = "http://127.0.0.1:9" }))
        {
            var e = Assert.Throws<NetworkException>(() => RunTracker.Start(Config(dir.File("b")), false, _ => { }, timeouts: Quick));
            Assert.Contains("WANDB_MODE=offline", e.Message);
            Assert.DoesNotContain(server.ApiKey, e.Message);
        }
        using (new EnvScope(EnvScope.Of(server.Environment), new Dictionary<string, string?> { ["WANDB_API_KEY"] = "wrong-key" }))
            Assert.Throws<UserInputException>(() => RunTracker.Start(Config(dir.File("c")), false, _ => { }));

        // Offline: nothing is sent; everything is kept and `tracker sync` creates the run later.
        using (new EnvScope(EnvScope.Of(server.Environment), new Dictionary<string, string?> { ["WANDB_MODE"] = "offline" }))
        using (var tracker = RunTracker.Start(Config(dir.File("d")), false, _ => { }))
        {
            for (int step = 1; step <= 3; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = step }, step);
            tracker.Print("offline line");
            tracker.Finish(0);
        }
        Assert.Empty(server.Runs);
        using (Online(server))
        {
            var result = CliRunner.Run("tracker", "sync", dir.File("d"));
            Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        }
        var run = Assert.Single(server.Runs.Values);
        Assert.Equal(3, run.History.Count);
        Assert.Contains(run.Output, l => l.EndsWith("offline line"));
        Assert.True(run.Complete);
    }

    [Fact]
    public void AnOfflineRunThatResumedAnOnlineOneSyncsAfterItsLines()
    {
        using var server = new WandbServer();
        using var dir = new TestPaths.TempDir();
        var checkpoint = dir.File("checkpoint.pth");
        File.WriteAllBytes(checkpoint, [1, 2, 3]);
        using (Online(server))
        using (var tracker = RunTracker.Start(Config(dir.File("run"), autoResume: true), false, _ => { }))
        {
            for (int step = 1; step <= 2; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = step }, step);
            tracker.RecordCheckpoint(checkpoint);
            tracker.Finish(0);
        }
        using (new EnvScope(EnvScope.Of(server.Environment), new Dictionary<string, string?> { ["WANDB_MODE"] = "offline" }))
        using (var tracker = RunTracker.Start(Config(dir.File("run"), autoResume: true), true, _ => { }))
        {
            for (int step = 3; step <= 4; step++) tracker.Log(new Dictionary<string, object?> { ["loss"] = step }, step);
            tracker.Finish(0);
        }
        using (Online(server))
        {
            var result = CliRunner.Run("tracker", "sync", dir.File("run"));
            Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        }
        var run = Assert.Single(server.Runs.Values);
        Assert.Equal([1L, 2, 3, 4], run.History.Select(h => WandbServer.ParseLine(h)["_step"]!.GetValue<long>()));
    }
}
