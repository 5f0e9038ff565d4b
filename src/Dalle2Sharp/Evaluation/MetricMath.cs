using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Evaluation;

/// <summary>
/// The statistics behind FID, KID and IS, with torchmetrics' definitions (float64 statistics, n−1
/// covariance, unbiased MMD with a polynomial kernel, IS over shuffled splits), on feature tensors
/// that the Inception network produces.
/// </summary>
public static class MetricMath
{
    /// <summary>Fréchet distance between Gaussians fitted to two feature sets [N, D]: |Δμ|² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½).</summary>
    public static double Fid(Tensor realFeatures, Tensor fakeFeatures)
    {
        using var scope = NewDisposeScope();
        var (mu1, sigma1) = MeanCov(realFeatures);
        var (mu2, sigma2) = MeanCov(fakeFeatures);
        var a = (mu1 - mu2).square().sum();
        var b = sigma1.trace() + sigma2.trace();
        // tr((Σ₁Σ₂)^½) = Σ √λᵢ(Σ₁Σ₂): the product's eigenvalues are real and ≥ 0 up to rounding.
        var c = linalg.eigvals(sigma1.matmul(sigma2)).sqrt().real.sum();
        return (a + b - 2 * c).item<double>();
    }

    /// <summary>Mean and n−1 covariance in float64.</summary>
    public static (Tensor Mean, Tensor Covariance) MeanCov(Tensor features)
    {
        var x = features.to(float64);
        long n = x.shape[0];
        var mean = x.mean([0]);
        var centred = x - mean;
        return (mean, centred.T.matmul(centred) / (n - 1));
    }

    /// <summary>Polynomial kernel (x·y·γ + c)^d with γ = 1/D by default.</summary>
    public static Tensor PolyKernel(Tensor x, Tensor y, int degree = 3, double? gamma = null, double coef = 1.0) =>
        (x.matmul(y.T) * (gamma ?? 1.0 / x.shape[1]) + coef).pow(degree);

    /// <summary>Unbiased MMD² estimate from the three kernel matrices (diagonals of the within-set ones left out).</summary>
    public static Tensor Mmd(Tensor kxx, Tensor kxy, Tensor kyy)
    {
        long m = kxx.shape[0];
        var xx = kxx.sum() - kxx.diagonal().sum();
        var yy = kyy.sum() - kyy.diagonal().sum();
        return (xx + yy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m);
    }

    /// <summary>
    /// KID: the MMD over <paramref name="subsets"/> random subsets of <paramref name="subsetSize"/> from each set;
    /// mean and (population) std.
    /// </summary>
    public static (double Mean, double Std) Kid(Tensor realFeatures, Tensor fakeFeatures, int subsets = 100, int subsetSize = 1000,
                                                 int degree = 3, double? gamma = null, double coef = 1.0, Generator? generator = null)
    {
        long n1 = realFeatures.shape[0], n2 = fakeFeatures.shape[0];
        if (subsetSize > n1 || subsetSize > n2)
            throw new ArgumentException($"KID subset_size {subsetSize} is larger than the number of samples ({Math.Min(n1, n2)})");
        using var scope = NewDisposeScope();
        var real = realFeatures.to(float64);
        var fake = fakeFeatures.to(float64);
        var scores = new double[subsets];
        for (int s = 0; s < subsets; s++)
        {
            var r = real[randperm(n1, generator: generator)[..subsetSize]];
            var f = fake[randperm(n2, generator: generator)[..subsetSize]];
            scores[s] = Mmd(PolyKernel(r, r, degree, gamma, coef), PolyKernel(r, f, degree, gamma, coef),
                            PolyKernel(f, f, degree, gamma, coef)).item<double>();
        }
        double mean = scores.Average();
        return (mean, Math.Sqrt(scores.Sum(v => (v - mean) * (v - mean)) / scores.Length));
    }

    /// <summary>
    /// Inception Score from class logits [N, C]: exp(E[KL(p(y|x) ‖ p(y))]) per split of the shuffled set;
    /// mean and (n−1) std over splits.
    /// </summary>
    public static (double Mean, double Std) InceptionScore(Tensor logits, int splits = 10, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var x = logits.to(float64)[randperm(logits.shape[0], generator: generator)];
        var prob = x.softmax(1);
        var logProb = x.log_softmax(1);
        var scores = prob.chunk(splits, 0).Zip(logProb.chunk(splits, 0)).Select(pair =>
        {
            var meanProb = pair.First.mean([0], keepdim: true);
            return (pair.First * (pair.Second - meanProb.log())).sum(1).mean().exp().item<double>();
        }).ToArray();
        double mean = scores.Average();
        double std = scores.Length > 1 ? Math.Sqrt(scores.Sum(v => (v - mean) * (v - mean)) / (scores.Length - 1)) : double.NaN;
        return (mean, std);
    }
}
