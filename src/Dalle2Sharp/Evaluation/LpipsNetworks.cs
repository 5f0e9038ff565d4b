using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Evaluation;

/// <summary>
/// The feature networks LPIPS uses, built like torchvision's so that the `features.*` keys of the
/// published weight files (vgg16-397923af.pth, alexnet-owt-7be5be79.pth, squeezenet1_1-b8a52dc0.pth)
/// load unchanged. Forward returns the activations LPIPS compares ("taps").
/// </summary>
public sealed class LpipsBackbone : nn.Module<Tensor, Tensor[]>
{
    private readonly Sequential features;
    private readonly int[] _tapsAfter;
    public IReadOnlyList<long> TapChannels { get; }

    private LpipsBackbone(string name, Sequential features, int[] tapsAfter, long[] channels) : base(name)
    {
        this.features = features;
        _tapsAfter = tapsAfter;
        TapChannels = channels;
        RegisterComponents();
    }

    public static LpipsBackbone Create(string netType) => netType switch
    {
        "vgg" => Vgg16(),
        "alex" => AlexNet(),
        "squeeze" => SqueezeNet11(),
        _ => throw new ArgumentException($"LPIPS net_type \"{netType}\" is not one of vgg, alex, squeeze"),
    };

    public override Tensor[] forward(Tensor x)
    {
        var taps = new List<Tensor>();
        int layer = 0, nextTap = 0;
        // Layers after the last tap are not run (VGG's final pool would fail on small images).
        foreach (var module in features.children())
        {
            x = ((nn.Module<Tensor, Tensor>)module).forward(x);
            if (layer == _tapsAfter[nextTap]) { taps.Add(x); nextTap++; }
            if (nextTap == _tapsAfter.Length) break;
            layer++;
        }
        return taps.ToArray();
    }

    /// <summary>torchvision VGG16 features; taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.</summary>
    private static LpipsBackbone Vgg16()
    {
        var layers = new List<nn.Module<Tensor, Tensor>>();
        long inC = 3;
        foreach (var v in new[] { 64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1 })
        {
            if (v < 0) { layers.Add(nn.MaxPool2d(2, 2)); continue; }
            layers.Add(nn.Conv2d(inC, v, 3, padding: 1));
            layers.Add(nn.ReLU());
            inC = v;
        }
        return new LpipsBackbone("vgg16", nn.Sequential(layers), [3, 8, 15, 22, 29], [64, 128, 256, 512, 512]);
    }

    /// <summary>torchvision AlexNet features; taps relu1 … relu5.</summary>
    private static LpipsBackbone AlexNet() => new("alexnet", nn.Sequential(
        nn.Conv2d(3, 64, 11, stride: 4, padding: 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding: 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding: 1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding: 1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding: 1), nn.ReLU(), nn.MaxPool2d(3, 2)),
        [1, 4, 7, 9, 11], [64, 192, 384, 256, 256]);

    /// <summary>torchvision SqueezeNet 1.1 features; the seven LPIPS slices end after layers 1, 4, 7, 9, 10, 11, 12.</summary>
    private static LpipsBackbone SqueezeNet11() => new("squeezenet1_1", nn.Sequential(
        nn.Conv2d(3, 64, 3, stride: 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode: true),
        new Fire(64, 16, 64, 64), new Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode: true),
        new Fire(128, 32, 128, 128), new Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode: true),
        new Fire(256, 48, 192, 192), new Fire(384, 48, 192, 192), new Fire(384, 64, 256, 256), new Fire(512, 64, 256, 256)),
        [1, 4, 7, 9, 10, 11, 12], [64, 128, 256, 384, 384, 512, 512]);

    /// <summary>SqueezeNet's Fire module (squeeze 1×1, then expand 1×1 and 3×3 concatenated), torchvision's key names.</summary>
    private sealed class Fire : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d squeeze;
        private readonly Conv2d expand1x1;
        private readonly Conv2d expand3x3;

        public Fire(long inplanes, long squeezePlanes, long expand1x1Planes, long expand3x3Planes) : base(nameof(Fire))
        {
            squeeze = nn.Conv2d(inplanes, squeezePlanes, 1);
            expand1x1 = nn.Conv2d(squeezePlanes, expand1x1Planes, 1);
            expand3x3 = nn.Conv2d(squeezePlanes, expand3x3Planes, 3, padding: 1);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            x = nn.functional.relu(squeeze.forward(x));
            return cat([nn.functional.relu(expand1x1.forward(x)), nn.functional.relu(expand3x3.forward(x))], 1);
        }
    }
}

/// <summary>LPIPS's per-layer linear head: (dropout, 1×1 conv to one channel, no bias) — key `lin{k}.model.1.weight`.</summary>
public sealed class NetLinLayer : nn.Module<Tensor, Tensor>
{
    private readonly Sequential model;

    public NetLinLayer(long channels) : base(nameof(NetLinLayer))
    {
        model = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(channels, 1, 1, bias: false));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => model.forward(x);
}
