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

    /// <summary>The smallest value any rank gave.</summary>
    long AllReduceMin(long value);

    /// <summary>Copies rank 0's contents of a contiguous tensor into every rank's.</summary>
    void Broadcast(Tensor tensor);

    /// <summary>Every rank's bytes (all of the same length), in rank order.</summary>
    byte[][] AllGather(byte[] mine);

    void Barrier();
}

/// <summary>One process: every collective is the identity.</summary>
public sealed class SingleProcess : ICollectives
{
    public static readonly SingleProcess Instance = new();
    public int Rank => 0;
    public int WorldSize => 1;
    public void AllReduceSum(Tensor tensor) { }
    public double[] AllReduceSum(params double[] values) => values;
    public long AllReduceMin(long value) => value;
    public void Broadcast(Tensor tensor) { }
    public byte[][] AllGather(byte[] mine) => [mine];
    public void Barrier() { }
    public void Dispose() { }
}
