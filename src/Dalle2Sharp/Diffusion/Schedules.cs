using static TorchSharp.torch;

namespace Dalle2Sharp.Diffusion;

/// <summary>Beta schedules as DALLE2-pytorch computes them (float64, except jsd in float32).</summary>
public static class Schedules
{
    public static readonly string[] Names = ["cosine", "linear", "quadratic", "jsd", "sigmoid"];

    public static Tensor Betas(string schedule, int timesteps)
    {
        double scale = 1000.0 / timesteps, start = scale * 0.0001, end = scale * 0.02;
        switch (schedule)
        {
            case "cosine":
            {
                const double s = 0.008;
                var x = linspace(0, timesteps, timesteps + 1, dtype: float64);
                var f = ((x / timesteps + s) / (1 + s) * Math.PI * 0.5).cos().pow(2);
                var ac = f / f[0];
                var betas = 1 - ac[1..] / ac[..^1];
                return betas.clip(0, 0.999);
            }
            case "linear":
                return linspace(start, end, timesteps, dtype: float64);
            case "quadratic":
                return linspace(Math.Sqrt(start), Math.Sqrt(end), timesteps, dtype: float64).pow(2);
            case "sigmoid":
                return linspace(-6, 6, timesteps, dtype: float64).sigmoid() * (end - start) + start;
            case "jsd":
                return 1.0 / linspace(timesteps, 1, timesteps, dtype: float32);
            default:
                throw new ArgumentException($"beta_schedule \"{schedule}\" is not one of {string.Join(", ", Names)}");
        }
    }
}
