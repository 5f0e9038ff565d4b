using Dalle2Sharp.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Evaluation;

public class MetricMathTests
{
    /// <summary>All 2^D sign patterns scaled per dimension and shifted: mean = shift, covariance exactly diagonal.</summary>
    private static Tensor SignDesign(double[] scale, double[] shift)
    {
        int d = scale.Length, n = 1 << d;
        var rows = new double[n * d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                rows[i * d + j] = shift[j] + scale[j] * (((i >> j) & 1) == 1 ? 1 : -1);
        return tensor(rows).reshape(n, d);
    }

    [Fact]
    public void FidMatchesTheClosedFormForDiagonalGaussians()
    {
        double[] s1 = [1.0, 2.0, 0.5, 3.0], s2 = [1.5, 1.0, 0.5, 2.0];
        double[] m1 = [0, 1, 2, 3], m2 = [1, 1, 0, -1];
        var a = SignDesign(s1, m1);
        var b = SignDesign(s2, m2);
        int n = 16;
        // n−1 covariance: variance = scale² · n/(n−1); for diagonal Σ, tr(Σ₁+Σ₂−2√(Σ₁Σ₂)) = Σ (σ₁−σ₂)².
        double expected = m1.Zip(m2).Sum(p => (p.First - p.Second) * (p.First - p.Second))
                        + s1.Zip(s2).Sum(p => Math.Pow(p.First - p.Second, 2) * n / (n - 1.0));
        Assert.Equal(expected, MetricMath.Fid(a, b), 8);
        Assert.Equal(0.0, MetricMath.Fid(a, a), 8);
    }

    [Fact]
    public void KidEqualsADirectUnbiasedMmd()
    {
        var g = new Generator(seed: 1);
        var x = randn([12, 5], generator: g, dtype: float64);
        var y = randn([12, 5], generator: g, dtype: float64) + 0.5;
        double K(Tensor u, Tensor v) => Math.Pow(u.dot(v).item<double>() / 5 + 1, 3);
        double xx = 0, yy = 0, xy = 0;
        for (int i = 0; i < 12; i++)
            for (int j = 0; j < 12; j++)
            {
                if (i != j) { xx += K(x[i], x[j]); yy += K(y[i], y[j]); }
                xy += K(x[i], y[j]);
            }
        double direct = (xx + yy) / (12 * 11) - 2 * xy / (12 * 12);
        // One subset of all samples: the subset's order does not change the MMD.
        var (mean, std) = MetricMath.Kid(x, y, subsets: 1, subsetSize: 12, generator: new Generator(seed: 2));
        Assert.Equal(direct, mean, 10);
        Assert.Equal(0.0, std);
        Assert.Throws<ArgumentException>(() => MetricMath.Kid(x, y, subsets: 1, subsetSize: 13));
    }

    [Fact]
    public void InceptionScoreOfConfidentBalancedPredictionsIsTheClassCount()
    {
        // Four confident predictions spread evenly over 2 classes: KL = ln 2 each, IS = 2.
        var logits = tensor(new double[] { 50, 0, 0, 50, 50, 0, 0, 50 }).reshape(4, 2);
        var (mean, _) = MetricMath.InceptionScore(logits, splits: 1, generator: new Generator(seed: 0));
        Assert.Equal(2.0, mean, 6);
        // All on one class: no diversity, IS = 1.
        var same = tensor(new double[] { 50, 0, 50, 0, 50, 0, 50, 0 }).reshape(4, 2);
        Assert.Equal(1.0, MetricMath.InceptionScore(same, splits: 2, generator: new Generator(seed: 0)).Mean, 6);
    }
}
