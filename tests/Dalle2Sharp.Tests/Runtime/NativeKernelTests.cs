using System.Runtime.CompilerServices;
using Dalle2Sharp.Runtime;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Runtime;

internal static class TestAssemblySetup
{
    /// <summary>Tests call TorchSharp before touching the library: apply its native settings first.</summary>
    [ModuleInitializer]
    internal static void Initialize() => NativeSetup.Configure();
}

public class NativeKernelTests
{
    /// <summary>
    /// float32 convolution gradients (oneDNN) against float64 (ATen's reference kernels) for the shapes
    /// the Unet uses: on an AVX-512 CPU, oneDNN's AVX-512 kernels gave input gradients off by up to 3.7.
    /// </summary>
    [Theory]
    [InlineData(7, 1, 3, 3, 8, 16)]
    [InlineData(3, 1, 1, 8, 8, 16)]
    [InlineData(15, 1, 7, 3, 8, 16)]
    [InlineData(1, 1, 0, 8, 8, 16)]
    [InlineData(4, 2, 1, 8, 16, 16)]
    [InlineData(3, 1, 1, 32, 16, 16)]
    public void Conv2dGradientsEqualFloat64(int kernel, int stride, int padding, int channelsIn, int channelsOut, int size)
    {
        using var scope = NewDisposeScope();
        var g = new TorchSharp.torch.Generator(seed: 3);
        var x = randn([2, channelsIn, size, size], generator: g, dtype: float64);
        var w = randn([channelsOut, channelsIn, kernel, kernel], generator: g, dtype: float64) * 0.1;
        var b = randn([channelsOut], generator: g, dtype: float64) * 0.1;
        long outSize = (size + 2 * padding - kernel) / stride + 1;
        var gy = randn([2, channelsOut, outSize, outSize], generator: g, dtype: float64);
        Tensor[] Grads(ScalarType type)
        {
            var xs = new[] { x, w, b }.Select(t => t.to(type).clone().requires_grad_()).ToArray();
            var y = nn.functional.conv2d(xs[0], xs[1], xs[2], strides: [stride, stride], padding: [padding, padding]);
            y.backward([gy.to(type)]);
            return xs.Select(t => t.grad!.to(float64)).ToArray();
        }
        var single = Grads(float32);
        var reference = Grads(float64);
        foreach (var (name, i) in new[] { ("input", 0), ("weight", 1), ("bias", 2) })
        {
            double diff = (single[i] - reference[i]).abs().max().item<double>();
            double scale = reference[i].abs().max().item<double>();
            Assert.True(diff <= 1e-4 * Math.Max(1, scale), $"{name} gradient off by {diff} (|max| {scale}); oneDNN ISA {NativeSetup.OneDnnIsa}");
        }
    }
}
