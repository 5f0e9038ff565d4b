using System.Text.Json.Nodes;
using Dalle2Sharp.Config;
using Dalle2Sharp.Models;
using Dalle2Sharp.Tests.Models;
using Dalle2Sharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Training;

/// <summary>
/// The flat optimizer against PyTorch 1.13's own AdamW / Adam + clip_grad_norm_ + zero_grad (numbers made by
/// tests/reference/make_optimizer_vectors.py), on the host-guarded and the device-gated path, and the trainer's
/// device-side guard against its host guard.
/// </summary>
public class FlatAdamWTests
{
    private static readonly JsonObject Reference = JsonNode.Parse(
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Training", "Vectors", "optimizer.json")))!.AsObject();

    private static Tensor Formula(long[] shape, double offset, double rate, Func<double, double> fn)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        return tensor(Enumerable.Range(0, (int)n).Select(i => (float)fn(rate * i + offset)).ToArray()).reshape(shape);
    }

    private static double[] Values(Tensor t) => t.detach().flatten().to(float64).data<double>().ToArray();

    [Theory]
    [InlineData("adamw", false)]
    [InlineData("adamw", true)]
    [InlineData("adam", false)]
    [InlineData("adam", true)]
    public void StepsAsTorch113DoesWithLateAndAbsentGradients(string kind, bool gated)
    {
        using var scope = NewDisposeScope();
        var shapes = Reference["shapes"]!.AsArray().Select(s => s!.AsArray().Select(d => (long)d!).ToArray()).ToArray();
        int late = (int)Reference["late"]!, never = (int)Reference["never"]!, steps = (int)Reference["steps"]!, warmup = (int)Reference["warmup"]!;
        double lr = (double)Reference["lr"]!, maxNorm = (double)Reference["max_norm"]!, wd = (double)Reference["weight_decay"]!;
        var parameters = shapes.Select((s, k) => new Parameter(Formula(s, k, 0.37, Math.Sin))).ToList();
        FlatAdamW.Group[] groups = kind == "adam"
            ? [new(parameters, 0.0)]
            : [new(parameters.Where(p => p.dim() >= 2).ToList(), wd), new(parameters.Where(p => p.dim() < 2).ToList(), 0.0)];
        using var optimizer = new FlatAdamW(groups, lr);
        var expected = Reference[kind]!;
        var gate = tensor(true);
        for (int s = 0; s < steps; s++)
        {
            for (int k = 0; k < parameters.Count; k++)
            {
                if (k == never || (k == late && s < 2)) continue;
                var g = Formula(shapes[k], s + k, 0.11, Math.Cos) * (1 + k);
                using var grad = parameters[k].grad;
                if (grad is null) parameters[k].grad = g;   // what autograd does: a new gradient, or added into the defined one
                else grad.add_(g);
            }
            optimizer.Prepare();
            double norm = optimizer.ClipGradNorm(maxNorm).item<float>();
            Assert.Equal((double)expected["norms"]![s]!, norm, 1e-5 * norm);
            optimizer.LearningRate = lr * Math.Min(1.0, (s + 1) / (double)warmup);
            optimizer.Step(gated ? gate : null);
            optimizer.ZeroGrad();
        }
        for (int k = 0; k < parameters.Count; k++)
            Vectors.AssertClose(Vectors.Doubles(expected["params"]![k]), Values(parameters[k]), rel: 1e-6, abs: 1e-6, what: $"param {k}");
        // torch's state_dict indexes parameters across groups in group order.
        var order = groups.SelectMany(g => g.Parameters).ToList();
        var state = optimizer.State();
        for (int k = 0; k < parameters.Count; k++)
        {
            var reference = expected["state"]![k];
            var ours = state[order.IndexOf(parameters[k])];
            if (reference is null) { Assert.Null(ours); continue; }
            Assert.Equal((int)reference["index"]!, order.IndexOf(parameters[k]));
            Assert.Equal((long)(double)reference["step"]!, ours!.Step);
            Vectors.AssertClose(Vectors.Doubles(reference["exp_avg"]), Values(ours.ExpAvg), rel: 1e-5, abs: 1e-8, what: $"exp_avg {k}");
            Vectors.AssertClose(Vectors.Doubles(reference["exp_avg_sq"]), Values(ours.ExpAvgSq), rel: 1e-5, abs: 1e-10, what: $"exp_avg_sq {k}");
        }
        // The members are views into one flat buffer: writing it writes them.
        Assert.Equal(parameters.Where((_, k) => k != never && k != late).Sum(p => p.numel()), optimizer.FlatParameters!.numel());
        using (no_grad()) optimizer.FlatParameters!.fill_(7f);
        Assert.Equal(7f, parameters[0][0, 0, 0, 0].item<float>());
        Assert.NotEqual(7f, parameters[late][0, 0].item<float>());
    }

    [Fact]
    public void AFalseGateLeavesWeightsAndMomentsExactlyAsTheyWere()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(Formula([6, 5], 0, 0.37, Math.Sin));
        using var optimizer = new FlatAdamW([new FlatAdamW.Group([p], 0.01)], 1e-2);
        p.grad = Formula([6, 5], 1, 0.11, Math.Cos);
        optimizer.Prepare();
        optimizer.ClipGradNorm(1.0);
        optimizer.Step(tensor(true));
        optimizer.ZeroGrad();
        var before = p.detach().clone();
        var moments = optimizer.State()[0]!.ExpAvgSq.clone();
        using (no_grad()) optimizer.FlatGradients!.fill_(float.NaN);
        var norm = optimizer.ClipGradNorm(1.0);
        optimizer.Step(norm.isfinite());
        Assert.True(p.detach().equal(before).all().item<bool>());
        Assert.True(optimizer.State()[0]!.ExpAvgSq.equal(moments).all().item<bool>());
        Assert.Equal(1, optimizer.State()[0]!.Step);
    }

    [Fact]
    public void TheDeviceSideGuardTrainsAsTheHostGuardAndSkipsANonFiniteStepWithoutReadingIt()
    {
        using var scope = NewDisposeScope();
        using var hostDecoder = TinyDecoder.Create(timesteps: 10);
        using var gatedDecoder = TinyDecoder.Create(timesteps: 10);
        gatedDecoder.load_state_dict(hostDecoder.state_dict());   // copied, not re-seeded: tests share torch's RNG
        var config = new TrainConfig { Lr = 1e-3, EmaBeta = 0.99, WarmupSteps = new ScalarOrList<int?>(3) };
        using var host = new DecoderTrainer(hostDecoder, config);
        using var gated = new DecoderTrainer(gatedDecoder, config) { DeviceSideGuard = true };
        // A per-tensor EMA beside the trainer's flat one: the same averages.
        using var perTensorEma = new UnetEma(hostDecoder.Unet(1), beta: 0.99);
        var data = new Generator(seed: 4);
        for (int s = 0; s < 12; s++)
        {
            var images = rand([2, 3, 16, 16], generator: data);
            var embeds = randn([2, 16], generator: data);
            var hostResult = host.Step(images, embeds, null, 1, new Generator(seed: (ulong)s));
            perTensorEma.Update();
            var gatedResult = gated.Step(images, embeds, null, 1, new Generator(seed: (ulong)s));
            Assert.False(hostResult.Deferred);
            Assert.True(gatedResult.Deferred);
        }
        foreach (var (a, b) in hostDecoder.parameters().Zip(gatedDecoder.parameters()))
            Vectors.AssertClose(Values(a), Values(b), rel: 1e-4, abs: 1e-5, what: "weights");
        foreach (var (a, b) in host.Ema![0].Averaged.parameters().Zip(perTensorEma.Averaged.parameters()))
            Assert.True(a.equal(b).all().item<bool>());
        var hostStats = host.TakeStatistics(1);
        var gatedStats = gated.TakeStatistics(1);
        Assert.Equal(12, gatedStats.Steps);
        Assert.Equal(hostStats.MeanLoss, gatedStats.MeanLoss, 1e-4);

        var before = gatedDecoder.parameters().Select(p => p.detach().clone()).ToArray();
        var emaBefore = gated.Ema![0].Averaged.parameters().Select(p => p.detach().clone()).ToArray();
        var bad = rand([2, 3, 16, 16], generator: data);
        bad[0, 0, 0, 0] = tensor(float.NaN);
        for (int s = 0; s < 10; s++) gated.Step(bad, randn([2, 16], generator: data), null, 1, new Generator(seed: 99));
        Assert.Equal(22, gated.Steps[0]);                           // not yet read back
        var stats = gated.TakeStatistics(1);
        Assert.Equal((0L, 10L), (stats.Steps, stats.Skipped));
        Assert.Equal(12, gated.Steps[0]);
        Assert.Equal(10, gated.SkippedNonFinite);
        Assert.Equal(10, gated.ConsecutiveNonFinite);
        Assert.Equal(12, gated.Ema[0].Step);
        Assert.Equal(12, gated.Optimizer(1)!.State()[0]!.Step);
        Assert.All(gatedDecoder.parameters().Zip(before), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
        Assert.All(gated.Ema[0].Averaged.parameters().Zip(emaBefore), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
    }
}
