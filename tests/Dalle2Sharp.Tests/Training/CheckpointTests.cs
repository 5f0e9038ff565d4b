using System.Collections;
using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using Dalle2Sharp.Tests.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Training;

public class CheckpointTests
{
    private static DecoderTrainer Trained(int steps, out Decoder decoder, ulong seed = 1)
    {
        decoder = TinyDecoder.Create(timesteps: 10);
        var trainer = new DecoderTrainer(decoder, new TrainConfig { Lr = 1e-3, EmaBeta = 0.99, WarmupSteps = new ScalarOrList<int?>(3) });
        var g = new Generator(seed: seed);
        for (int s = 0; s < steps; s++)
            trainer.Step(rand([2, 3, 16, 16], generator: g), randn([2, 16], generator: g), null, 1, g);
        return trainer;
    }

    private static void AssertSameTensors(IEnumerable<Tensor> a, IEnumerable<Tensor> b)
    {
        foreach (var (x, y) in a.Zip(b)) Assert.True(x.equal(y).all().item<bool>());
    }

    [Fact]
    public void RoundTripRestoresWeightsEmaStepsAndOptimizerMoments()
    {
        using var dir = new TestPaths.TempDir();
        using var source = Trained(12, out var d1);
        Checkpoint.Save(dir.File("ck.pth"), source, new Dictionary<string, object?> { ["epoch"] = 2, ["next_task"] = "val", ["samples_seen"] = 24L });

        using var target = Trained(0, out var d2, seed: 9);
        var root = Checkpoint.Load(dir.File("ck.pth"), target);
        AssertSameTensors(d1.parameters(), d2.parameters());
        AssertSameTensors(source.Ema![0].Averaged.parameters(), target.Ema![0].Averaged.parameters());
        Assert.Equal(12, target.Steps[0]);
        Assert.Equal(12, target.Ema[0].Step);
        Assert.Equal(2, root["epoch"]);
        Assert.Equal("val", root["next_task"]);

        var s1 = source.Optimizer(1)!.State();
        var s2 = target.Optimizer(1)!.State();
        Assert.All(s1.Where(s => s is not null), s => Assert.Equal(12, s!.Step));
        Assert.Equal(s1.Select(s => s?.Step), s2.Select(s => s?.Step));
        AssertSameTensors(s1.Where(s => s is not null).Select(s => s!.ExpAvgSq), s2.Where(s => s is not null).Select(s => s!.ExpAvgSq));
        AssertSameTensors(s1.Where(s => s is not null).Select(s => s!.ExpAvg), s2.Where(s => s is not null).Select(s => s!.ExpAvg));

        // Training on from both gives the same next step.
        var g1 = new Generator(seed: 77);
        var g2 = new Generator(seed: 77);
        var batch = rand([2, 3, 16, 16], generator: new Generator(seed: 5));
        var embed = randn([2, 16], generator: new Generator(seed: 6));
        source.Step(batch, embed, null, 1, g1);
        target.Step(batch, embed, null, 1, g2);
        AssertSameTensors(d1.parameters(), d2.parameters());
    }

    [Fact]
    public void LayoutIsUpstreams()
    {
        using var dir = new TestPaths.TempDir();
        using var trainer = Trained(2, out _);
        Checkpoint.Save(dir.File("ck.pth"), trainer);
        var root = PyTorchUnpickler.UnpickleStateDict(dir.File("ck.pth"));
        Assert.Equal("1.15.6", root["version"]);
        Assert.Equal(new long[] { 2 }, ((Tensor)root["steps"]!).data<long>().ToArray());
        var model = (IDictionary)root["model"]!;
        Assert.Contains("unets.0.to_out.weight", model.Keys.Cast<string>());
        Assert.Contains("noise_schedulers.0.betas", model.Keys.Cast<string>());
        var ema = (IDictionary)root["ema"]!;
        Assert.Contains("0.initted", ema.Keys.Cast<string>());
        Assert.Contains("0.ema_model.to_out.weight", ema.Keys.Cast<string>());
        Assert.Contains("0.online_model.to_out.weight", ema.Keys.Cast<string>());
        var optim = (IDictionary)root["optim0"]!;
        var groups = (ArrayList)optim["param_groups"]!;
        Assert.Equal(2, groups.Count);
        Assert.Equal(0.01, ((IDictionary)groups[0]!)["weight_decay"]);
        Assert.NotNull(root["sched0"]);
    }

    [Fact]
    public void PlainStateDictAndModelFilesLoad()
    {
        using var dir = new TestPaths.TempDir();
        using var source = Trained(2, out var d1);
        // A plain state dict as torch.save(decoder.state_dict()) writes it (PyBridge's save_py would write the flat
        // optimizer's parameter views with their storage offsets, unreadable; TorchFiles.SaveStateDict compacts them).
        var plain = new System.Collections.Specialized.OrderedDictionary();
        foreach (var (key, value) in d1.state_dict()) plain[key] = value;
        Dalle2Sharp.Runtime.TorchFiles.SaveStateDict(dir.File("plain.pth"), plain);
        using var target = Trained(0, out var d2, seed: 3);
        Checkpoint.Load(dir.File("plain.pth"), target, onlyModel: true);
        AssertSameTensors(d1.parameters(), d2.parameters());
    }

    [Fact]
    public void DifferentArchitectureListsMismatches()
    {
        using var dir = new TestPaths.TempDir();
        using var source = Trained(1, out _);
        Checkpoint.Save(dir.File("ck.pth"), source);
        var config = TinyDecoder.Config(timesteps: 10);
        config.Unets[0].Dim = 16;
        using var other = new DecoderTrainer(new Decoder(config), new TrainConfig());
        var e = Assert.Throws<UserInputException>(() => Checkpoint.Load(dir.File("ck.pth"), other));
        Assert.Contains("does not fit this model", e.Message);
        Assert.Contains("unets.0.init_conv.convs.0.weight: checkpoint [4, 3, 3, 3], model [8, 3, 3, 3]", e.Message);
    }

    [Fact]
    public void FailedWriteLeavesThePreviousFile()
    {
        using var dir = new TestPaths.TempDir();
        File.WriteAllText(dir.File("ck.pth"), "previous");
        Assert.ThrowsAny<Exception>(() => Dalle2Sharp.Runtime.AtomicFile.Write(dir.File("ck.pth"), s => { s.Write(new byte[100]); throw new IOException("disk full"); }));
        Assert.Equal("previous", File.ReadAllText(dir.File("ck.pth")));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    /// <summary>Rewrites a saved checkpoint's top-level entries (as another writer would have laid them out).</summary>
    private static void Rewrite(string path, Action<Hashtable> change)
    {
        var root = PyTorchUnpickler.UnpickleStateDict(path);
        change(root);
        using var file = File.Create(path);
        PyTorchPickler.PickleStateDict(file, root, leaveOpen: true);
    }

    [Fact]
    public void EmaWithZeroDimInittedAndStepLoads()
    {
        // Newer ema-pytorch stores initted/step 0-dim (bool, int64); 0.2.4 and we store [1].
        using var dir = new TestPaths.TempDir();
        using var source = Trained(12, out _);
        Checkpoint.Save(dir.File("ck.pth"), source);
        Rewrite(dir.File("ck.pth"), root =>
        {
            var ema = (IDictionary)root["ema"]!;
            ema["0.initted"] = tensor(true);
            ema["0.step"] = tensor(12L);
        });
        using var target = Trained(0, out _, seed: 9);
        Checkpoint.Load(dir.File("ck.pth"), target);
        Assert.Equal(12, target.Ema![0].Step);
        var state = target.Ema[0].state_dict();
        Assert.Equal(new long[] { 1 }, state["initted"].shape);
        Assert.Equal(1.0f, state["initted"].item<float>());
    }

    [Fact]
    public void CheckpointOfAMaskedRunWithoutTheUntrainedUnetLoads()
    {
        // Upstream's train_decoder.py swaps untrained unets for nn.Identity: no unets.1.* and no EMA weights for them.
        using var dir = new TestPaths.TempDir();
        var config = new TrainConfig { UnetTrainingMask = [true, false] };
        using var d1 = TinyDecoder.Create(unets: 2, timesteps: 10);
        using var source = new DecoderTrainer(d1, config);
        Checkpoint.Save(dir.File("ck.pth"), source);
        Rewrite(dir.File("ck.pth"), root =>
        {
            foreach (var name in new[] { "model", "ema" })
            {
                var dict = (IDictionary)root[name]!;
                foreach (var key in dict.Keys.Cast<string>().Where(k => k.StartsWith("unets.1.") || k.StartsWith("1.online_model.") || k.StartsWith("1.ema_model.")).ToList())
                    dict.Remove(key);
            }
        });
        using var d2 = TinyDecoder.Create(unets: 2, timesteps: 10, seed: 4);
        using var target = new DecoderTrainer(d2, config);
        Checkpoint.Load(dir.File("ck.pth"), target);
        AssertSameTensors(d1.Unet(1).parameters(), d2.Unet(1).parameters());

        // The same file does not fit a run that trains the second unet: its weights are missing.
        using var d3 = TinyDecoder.Create(unets: 2, timesteps: 10);
        using var all = new DecoderTrainer(d3, new TrainConfig());
        Assert.Contains("missing unets.1.", Assert.Throws<UserInputException>(() => Checkpoint.Load(dir.File("ck.pth"), all)).Message);
    }
}
