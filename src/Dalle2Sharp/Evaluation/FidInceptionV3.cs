using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dalle2Sharp.Evaluation;

/// <summary>
/// The Inception v3 of FID (the TF 2015-12-05 graph ported as `pt_inception-2015-12-05-6726825d.pth`,
/// used by pytorch-fid, torch-fidelity and torchmetrics): torchvision's module names, 1008 classes,
/// average pools that do not count padding, a max pool in the last block. Forward returns the feature
/// taps FID, KID and IS use: "64", "192", "768", "2048" (spatially averaged) and the logits.
/// </summary>
public sealed class FidInceptionV3 : nn.Module<Tensor, Dictionary<string, Tensor>>
{
    private readonly BasicConv2d Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
    private readonly InceptionA Mixed_5b, Mixed_5c, Mixed_5d;
    private readonly InceptionB Mixed_6a;
    private readonly InceptionC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
    private readonly InceptionD Mixed_7a;
    private readonly InceptionE Mixed_7b, Mixed_7c;
    private readonly Linear fc;

    public FidInceptionV3() : base("FIDInceptionV3")
    {
        Conv2d_1a_3x3 = new BasicConv2d(3, 32, (3, 3), stride: 2);
        Conv2d_2a_3x3 = new BasicConv2d(32, 32, (3, 3));
        Conv2d_2b_3x3 = new BasicConv2d(32, 64, (3, 3), padding: (1, 1));
        Conv2d_3b_1x1 = new BasicConv2d(64, 80, (1, 1));
        Conv2d_4a_3x3 = new BasicConv2d(80, 192, (3, 3));
        Mixed_5b = new InceptionA(192, 32);
        Mixed_5c = new InceptionA(256, 64);
        Mixed_5d = new InceptionA(288, 64);
        Mixed_6a = new InceptionB(288);
        Mixed_6b = new InceptionC(768, 128);
        Mixed_6c = new InceptionC(768, 160);
        Mixed_6d = new InceptionC(768, 160);
        Mixed_6e = new InceptionC(768, 192);
        Mixed_7a = new InceptionD(768);
        Mixed_7b = new InceptionE(1280, maxPool: false);
        Mixed_7c = new InceptionE(2048, maxPool: true);
        fc = nn.Linear(2048, 1008);
        RegisterComponents();
        eval();
    }

    /// <summary>
    /// <paramref name="images"/>: uint8-valued images [N, 3, H, W] (0–255, any size). Resized to 299
    /// with TensorFlow 1's bilinear resize, as torch-fidelity's front end (which torchmetrics uses)
    /// does, then scaled to [-1, 1].
    /// </summary>
    public override Dictionary<string, Tensor> forward(Tensor images)
    {
        var x = images.to(float32);
        if (x.shape[2] != 299 || x.shape[3] != 299) x = ResizeBilinearTf1(x, 299, 299);
        x = (x - 128) / 128;
        x = Conv2d_1a_3x3.forward(x);
        x = Conv2d_2a_3x3.forward(x);
        x = Conv2d_2b_3x3.forward(x);
        x = nn.functional.max_pool2d(x, 3, 2);
        var taps = new Dictionary<string, Tensor> { ["64"] = Pooled(x) };
        x = Conv2d_3b_1x1.forward(x);
        x = Conv2d_4a_3x3.forward(x);
        x = nn.functional.max_pool2d(x, 3, 2);
        taps["192"] = Pooled(x);
        x = Mixed_5b.forward(x);
        x = Mixed_5c.forward(x);
        x = Mixed_5d.forward(x);
        x = Mixed_6a.forward(x);
        x = Mixed_6b.forward(x);
        x = Mixed_6c.forward(x);
        x = Mixed_6d.forward(x);
        x = Mixed_6e.forward(x);
        taps["768"] = Pooled(x);
        x = Mixed_7a.forward(x);
        x = Mixed_7b.forward(x);
        x = Mixed_7c.forward(x);
        var pooled = Pooled(x);
        taps["2048"] = pooled;
        taps["logits_unbiased"] = pooled.matmul(fc.weight!.T);
        taps["logits"] = fc.forward(pooled);
        return taps;
    }

    private static Tensor Pooled(Tensor x) => x.mean([2, 3]);

    /// <summary>
    /// tf.image.resize_bilinear (TF 1, align_corners false, no half-pixel centres): output pixel i reads
    /// the input at i·in/out, interpolating between floor and floor + 1 (clamped to the edge).
    /// </summary>
    public static Tensor ResizeBilinearTf1(Tensor x, int outH, int outW)
    {
        long inH = x.shape[2], inW = x.shape[3];
        (Tensor Lo, Tensor Hi, Tensor Weight) Axis(long inSize, int outSize)
        {
            var src = arange(outSize, dtype: float32, device: x.device) * ((float)inSize / outSize);
            var lo = src.floor().to(int64).clamp(max: inSize - 1);
            var hi = (lo + 1).clamp(max: inSize - 1);
            return (lo, hi, src - lo.to(float32));
        }
        var (y0, y1, wy) = Axis(inH, outH);
        var (x0, x1, wx) = Axis(inW, outW);
        var top = x.index_select(2, y0);
        var bottom = x.index_select(2, y1);
        var rows = top + (bottom - top) * wy.reshape(1, 1, -1, 1);
        var left = rows.index_select(3, x0);
        var right = rows.index_select(3, x1);
        return left + (right - left) * wx.reshape(1, 1, 1, -1);
    }

    private static Tensor AvgPool3(Tensor x) => nn.functional.avg_pool2d(x, 3, stride: 1, padding: 1, count_include_pad: false);

    /// <summary>conv (no bias) → BatchNorm (eps 0.001) → ReLU, keys `conv.*`, `bn.*`.</summary>
    private sealed class BasicConv2d : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv;
        private readonly BatchNorm2d bn;

        public BasicConv2d(long inC, long outC, (long, long) kernel, long stride = 1, (long, long)? padding = null) : base(nameof(BasicConv2d))
        {
            conv = nn.Conv2d(inC, outC, kernel, stride: (stride, stride), padding: padding ?? (0, 0), bias: false);
            bn = nn.BatchNorm2d(outC, eps: 0.001);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => nn.functional.relu(bn.forward(conv.forward(x)));
    }

    private sealed class InceptionA : nn.Module<Tensor, Tensor>
    {
        private readonly BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool;

        public InceptionA(long inC, long poolFeatures) : base(nameof(InceptionA))
        {
            branch1x1 = new BasicConv2d(inC, 64, (1, 1));
            branch5x5_1 = new BasicConv2d(inC, 48, (1, 1));
            branch5x5_2 = new BasicConv2d(48, 64, (5, 5), padding: (2, 2));
            branch3x3dbl_1 = new BasicConv2d(inC, 64, (1, 1));
            branch3x3dbl_2 = new BasicConv2d(64, 96, (3, 3), padding: (1, 1));
            branch3x3dbl_3 = new BasicConv2d(96, 96, (3, 3), padding: (1, 1));
            branch_pool = new BasicConv2d(inC, poolFeatures, (1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => cat([
            branch1x1.forward(x),
            branch5x5_2.forward(branch5x5_1.forward(x)),
            branch3x3dbl_3.forward(branch3x3dbl_2.forward(branch3x3dbl_1.forward(x))),
            branch_pool.forward(AvgPool3(x))], 1);
    }

    private sealed class InceptionB : nn.Module<Tensor, Tensor>
    {
        private readonly BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;

        public InceptionB(long inC) : base(nameof(InceptionB))
        {
            branch3x3 = new BasicConv2d(inC, 384, (3, 3), stride: 2);
            branch3x3dbl_1 = new BasicConv2d(inC, 64, (1, 1));
            branch3x3dbl_2 = new BasicConv2d(64, 96, (3, 3), padding: (1, 1));
            branch3x3dbl_3 = new BasicConv2d(96, 96, (3, 3), stride: 2);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => cat([
            branch3x3.forward(x),
            branch3x3dbl_3.forward(branch3x3dbl_2.forward(branch3x3dbl_1.forward(x))),
            nn.functional.max_pool2d(x, 3, 2)], 1);
    }

    private sealed class InceptionC : nn.Module<Tensor, Tensor>
    {
        private readonly BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3,
            branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;

        public InceptionC(long inC, long c7) : base(nameof(InceptionC))
        {
            branch1x1 = new BasicConv2d(inC, 192, (1, 1));
            branch7x7_1 = new BasicConv2d(inC, c7, (1, 1));
            branch7x7_2 = new BasicConv2d(c7, c7, (1, 7), padding: (0, 3));
            branch7x7_3 = new BasicConv2d(c7, 192, (7, 1), padding: (3, 0));
            branch7x7dbl_1 = new BasicConv2d(inC, c7, (1, 1));
            branch7x7dbl_2 = new BasicConv2d(c7, c7, (7, 1), padding: (3, 0));
            branch7x7dbl_3 = new BasicConv2d(c7, c7, (1, 7), padding: (0, 3));
            branch7x7dbl_4 = new BasicConv2d(c7, c7, (7, 1), padding: (3, 0));
            branch7x7dbl_5 = new BasicConv2d(c7, 192, (1, 7), padding: (0, 3));
            branch_pool = new BasicConv2d(inC, 192, (1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => cat([
            branch1x1.forward(x),
            branch7x7_3.forward(branch7x7_2.forward(branch7x7_1.forward(x))),
            branch7x7dbl_5.forward(branch7x7dbl_4.forward(branch7x7dbl_3.forward(branch7x7dbl_2.forward(branch7x7dbl_1.forward(x))))),
            branch_pool.forward(AvgPool3(x))], 1);
    }

    private sealed class InceptionD : nn.Module<Tensor, Tensor>
    {
        private readonly BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;

        public InceptionD(long inC) : base(nameof(InceptionD))
        {
            branch3x3_1 = new BasicConv2d(inC, 192, (1, 1));
            branch3x3_2 = new BasicConv2d(192, 320, (3, 3), stride: 2);
            branch7x7x3_1 = new BasicConv2d(inC, 192, (1, 1));
            branch7x7x3_2 = new BasicConv2d(192, 192, (1, 7), padding: (0, 3));
            branch7x7x3_3 = new BasicConv2d(192, 192, (7, 1), padding: (3, 0));
            branch7x7x3_4 = new BasicConv2d(192, 192, (3, 3), stride: 2);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => cat([
            branch3x3_2.forward(branch3x3_1.forward(x)),
            branch7x7x3_4.forward(branch7x7x3_3.forward(branch7x7x3_2.forward(branch7x7x3_1.forward(x)))),
            nn.functional.max_pool2d(x, 3, 2)], 1);
    }

    /// <summary>The last blocks; FID's variant pools with an average (Mixed_7b) and a max (Mixed_7c).</summary>
    private sealed class InceptionE : nn.Module<Tensor, Tensor>
    {
        private readonly BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b,
            branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
        private readonly bool _maxPool;

        public InceptionE(long inC, bool maxPool) : base(nameof(InceptionE))
        {
            _maxPool = maxPool;
            branch1x1 = new BasicConv2d(inC, 320, (1, 1));
            branch3x3_1 = new BasicConv2d(inC, 384, (1, 1));
            branch3x3_2a = new BasicConv2d(384, 384, (1, 3), padding: (0, 1));
            branch3x3_2b = new BasicConv2d(384, 384, (3, 1), padding: (1, 0));
            branch3x3dbl_1 = new BasicConv2d(inC, 448, (1, 1));
            branch3x3dbl_2 = new BasicConv2d(448, 384, (3, 3), padding: (1, 1));
            branch3x3dbl_3a = new BasicConv2d(384, 384, (1, 3), padding: (0, 1));
            branch3x3dbl_3b = new BasicConv2d(384, 384, (3, 1), padding: (1, 0));
            branch_pool = new BasicConv2d(inC, 192, (1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var b3 = branch3x3_1.forward(x);
            var bd = branch3x3dbl_2.forward(branch3x3dbl_1.forward(x));
            var pool = _maxPool ? nn.functional.max_pool2d(x, 3, 1, 1) : AvgPool3(x);
            return cat([
                branch1x1.forward(x),
                cat([branch3x3_2a.forward(b3), branch3x3_2b.forward(b3)], 1),
                cat([branch3x3dbl_3a.forward(bd), branch3x3dbl_3b.forward(bd)], 1),
                branch_pool.forward(pool)], 1);
        }
    }
}
