using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Tracking;

namespace Dalle2Sharp.Tests.Tracking;

public class RunTrackerTests
{
    [Fact]
    public void NonFiniteValuesAreRecordedNotThrown()
    {
        // A diverged validation loss (NaN) or a degenerate metric (∞) used to end the run at the log line.
        using var dir = new TestPaths.TempDir();
        var printed = new List<string>();
        using (var tracker = RunTracker.Start(new TrackerConfig { DataPath = dir.File("run") }, resuming: false, printed.Add))
            tracker.Log(new Dictionary<string, object?> { ["Epoch"] = 0, ["Unet 2 Validation Loss"] = double.NaN, ["FID"] = double.PositiveInfinity, ["LPIPS"] = 0.25 });
        var record = JsonNode.Parse(File.ReadAllLines(dir.File("run/metrics.jsonl")).Single())!.AsObject();
        Assert.Equal("NaN", (string)record["Unet 2 Validation Loss"]!);
        Assert.Equal("Infinity", (string)record["FID"]!);
        Assert.Equal(0.25, (double)record["LPIPS"]!);
        Assert.Contains("NaN", printed.Single());
    }
}
