using static TorchSharp.torch;

namespace Dalle2Sharp.Diffusion;

/// <summary>Terms of the variational lower bound used with a learned variance (improved-DDPM's hybrid loss).</summary>
public static class VariationalBound
{
    /// <summary>Converts nats to bits.</summary>
    public static readonly double Nat = 1.0 / Math.Log(2.0);

    /// <summary>KL(N(m1, e^lv1) ‖ N(m2, e^lv2)), element-wise.</summary>
    public static Tensor NormalKl(Tensor mean1, Tensor logVar1, Tensor mean2, Tensor logVar2) =>
        0.5 * (-1.0 + logVar2 - logVar1 + (logVar1 - logVar2).exp() + (mean1 - mean2).square() * (-logVar2).exp());

    public static Tensor ApproxStandardNormalCdf(Tensor x) =>
        0.5 * (1.0 + (Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * x.pow(3))).tanh());

    /// <summary>Log-likelihood of x (in [-1, 1], 256 bins) under a Gaussian discretised to those bins.</summary>
    public static Tensor DiscretizedGaussianLogLikelihood(Tensor x, Tensor means, Tensor logScales, double threshold = 0.999)
    {
        double eps = x.dtype == ScalarType.Float32 ? 1e-12 : 1e-3;
        Tensor SafeLog(Tensor t) => t.clamp(min: eps).log();
        var centered = x - means;
        var invStd = (-logScales).exp();
        var cdfPlus = ApproxStandardNormalCdf(invStd * (centered + 1.0 / 255.0));
        var cdfMin = ApproxStandardNormalCdf(invStd * (centered - 1.0 / 255.0));
        var logCdfPlus = SafeLog(cdfPlus);
        var logOneMinusCdfMin = SafeLog(1.0 - cdfMin);
        var logCdfDelta = SafeLog(cdfPlus - cdfMin);
        return where(x < -threshold, logCdfPlus, where(x > threshold, logOneMinusCdfMin, logCdfDelta));
    }

    /// <summary>Mean over every dim but the batch dim.</summary>
    public static Tensor MeanFlat(Tensor t) => t.reshape(t.shape[0], -1).mean([1]);
}
