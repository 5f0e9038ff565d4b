using Dalle2Sharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Models;

public class GradientCheckpointTests
{
    [Fact]
    public void CheckpointedFunctionGivesTheSameGradients()
    {
        using var scope = NewDisposeScope();
        var w = randn([4, 4], generator: new Generator(seed: 1)).requires_grad_();
        var x1 = randn([3, 4], generator: new Generator(seed: 2)).requires_grad_();
        var x2 = x1.detach().clone().requires_grad_();
        Func<Tensor[], Tensor> fn = inputs => inputs[0].matmul(w).tanh().matmul(w);

        fn([x1]).sum().backward();
        var plainW = w.grad!.clone();
        w.grad!.zero_();
        GradientCheckpoint.Run(fn, x2).sum().backward();
        Assert.True(w.grad!.allclose(plainW, rtol: 1e-6, atol: 1e-7));
        Assert.True(x2.grad!.allclose(x1.grad!, rtol: 1e-6, atol: 1e-7));
    }
}

public class UnetCheckpointingTests
{
    [Fact]
    public void CheckpointDuringTrainingGivesTheSameLossAndGradients()
    {
        using var scope = NewDisposeScope();
        // Same weights in both (copied, not re-seeded: tests run in parallel and share torch's global RNG).
        using var reference = new Decoder(TinyDecoder.Config(timesteps: 10));
        (float Loss, Tensor[] Grads) Step(bool checkpoint)
        {
            var config = TinyDecoder.Config(timesteps: 10);
            config.Unets[0].CheckpointDuringTraining = checkpoint;
            using var decoder = new Decoder(config);
            decoder.load_state_dict(reference.state_dict());
            var g = new Generator(seed: 3);
            var loss = decoder.forward(rand([2, 3, 16, 16], generator: g), randn([2, 16], generator: g), generator: g);
            loss.backward();
            return (loss.item<float>(), decoder.parameters().Select(p => p.grad?.clone() ?? zeros(1)).ToArray());
        }
        var plain = Step(false);
        var checkpointed = Step(true);
        Assert.Equal(plain.Loss, checkpointed.Loss, 5);
        for (int i = 0; i < plain.Grads.Length; i++)
            Assert.True(plain.Grads[i].allclose(checkpointed.Grads[i], rtol: 1e-4, atol: 1e-6), $"gradient {i} differs");
    }
}
