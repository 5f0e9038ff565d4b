using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// What data-parallel training needs from the processes of one run: who we are, sums across all of them, and
/// rank 0's values everywhere. <see cref="SingleProcess"/> when alone; <see cref="Mpi"/> under mpirun/srun.
/// Every call is collective: all ranks make the same calls in the same order.
/// </summary>
public interface ICollectives : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }
    bool IsRoot => Rank == 0;

    /// <summary>Sums a contiguous float32/float64/int64 tensor across ranks in place (CUDA tensors are staged through host memory).</summary>
    void AllReduceSum(Tensor tensor);

    /// <summary>Sums each element across ranks.</summary>
    double[] AllReduceSum(params double[] values);

    /// <summary>Copies rank 0's contents of a contiguous tensor into every rank's.</summary>
    void Broadcast(Tensor tensor);

    /// <summary>Every rank's bytes (all of the same length), in rank order.</summary>
    byte[][] AllGather(byte[] mine);

    void Barrier();

    /// <summary>
    /// Ends every rank's process at once (MPI_Abort): what a rank that failed must do instead of finishing, because the
    /// others may be waiting for it in a collective. No-op for one process.
    /// </summary>
    void Abort(int exitCode);
}

public static class CollectivesExtensions
{
    /// <summary>Every rank's rows ([n_r, …] float32, n_r may differ) concatenated in rank order, on every rank. Collective.</summary>
    public static Tensor AllGatherRows(this ICollectives collectives, Tensor rows)
    {
        if (collectives.WorldSize == 1) return rows;
        var host = rows.to(ScalarType.Float32).cpu().contiguous();
        long n = host.shape[0], rowElements = n == 0 ? host.shape.Skip(1).Aggregate(1L, (a, b) => a * b) : host.numel() / n;
        var counts = collectives.AllGather(BitConverter.GetBytes(n)).Select(b => BitConverter.ToInt64(b)).ToArray();
        long most = counts.Max();
        var padded = new float[most * rowElements];
        host.data<float>().CopyTo(padded, 0);
        var bytes = new byte[padded.Length * sizeof(float)];
        Buffer.BlockCopy(padded, 0, bytes, 0, bytes.Length);
        var all = collectives.AllGather(bytes);
        var parts = new List<Tensor>();
        for (int r = 0; r < all.Length; r++)
        {
            var values = new float[counts[r] * rowElements];
            Buffer.BlockCopy(all[r], 0, values, 0, values.Length * sizeof(float));
            parts.Add(tensor(values).reshape([counts[r], .. host.shape.Skip(1)]));
        }
        return cat(parts.ToArray(), 0);
    }
}

/// <summary>One process: every collective is the identity.</summary>
public sealed class SingleProcess : ICollectives
{
    public static readonly SingleProcess Instance = new();
    public int Rank => 0;
    public int WorldSize => 1;
    public void AllReduceSum(Tensor tensor) { }
    public double[] AllReduceSum(params double[] values) => values;
    public void Broadcast(Tensor tensor) { }
    public byte[][] AllGather(byte[] mine) => [mine];
    public void Barrier() { }
    public void Abort(int exitCode) { }
    public void Dispose() { }
}
