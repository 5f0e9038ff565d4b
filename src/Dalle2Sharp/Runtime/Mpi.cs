using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// Open MPI's C API (libmpi.so.40: Debian's libopenmpi3) through P/Invoke — the collectives of data-parallel training
/// when launched by `mpirun` or Slurm's `srun --mpi=pmix`. Written by hand because no maintained .NET binding works with
/// Open MPI (MPI.NET 1.4 is built against MS-MPI's integer handles and crashes with Open MPI's pointer handles; see
/// ../shared/reference/torchsharp-notes.md). Open MPI's handles are addresses of its exported objects
/// (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum, …) and MPI_IN_PLACE is (void*)1.
/// A rank that dies makes mpirun stop the others (its default error handling), so no collective waits for it forever.
/// </summary>
public sealed unsafe class Mpi : ICollectives
{
    public const string Library = "libmpi.so.40";
    private static readonly IntPtr InPlace = 1;
    private const int ThreadSerialized = 2;   // MPI_THREAD_SERIALIZED: one thread at a time calls MPI (the training thread)
    /// <summary>Elements per MPI call: MPI counts are C ints.</summary>
    private const long MaxCount = int.MaxValue / 2;

    private readonly IntPtr _library, _world, _float, _double, _int64, _byte, _sum;
    private readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int> _allreduce;
    private readonly delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int> _bcast;
    private readonly delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, int> _allgather;
    private readonly delegate* unmanaged<IntPtr, int> _barrier;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<IntPtr, int, int> _abort;
    private bool _finalized;

    public int Rank { get; }
    public int WorldSize { get; }

    /// <summary>Whether this process was started by an MPI launcher (Open MPI's mpirun, or PMIx under Slurm).</summary>
    public static bool Launched =>
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null || Environment.GetEnvironmentVariable("PMIX_RANK") is not null;

    /// <summary>MPI when launched by an MPI launcher with more than one rank, else the single process (no MPI library needed).</summary>
    public static ICollectives StartIfLaunched()
    {
        if (!Launched) return SingleProcess.Instance;
        var mpi = new Mpi();
        if (mpi.WorldSize > 1) return mpi;
        mpi.Dispose();
        return SingleProcess.Instance;
    }

    private Mpi()
    {
        if (!NativeLibrary.TryLoad(Library, out _library))
            throw new MpiException($"launched by an MPI launcher, but {Library} (Open MPI) cannot be loaded: " +
                                           "install it (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi3)");
        IntPtr Export(string name) => NativeLibrary.GetExport(_library, name);
        (_world, _float, _double, _int64, _byte) =
            (Export("ompi_mpi_comm_world"), Export("ompi_mpi_float"), Export("ompi_mpi_double"), Export("ompi_mpi_int64_t"), Export("ompi_mpi_byte"));
        _sum = Export("ompi_mpi_op_sum");
        _allreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int>)Export("MPI_Bcast");
        _allgather = (delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, int>)Export("MPI_Allgather");
        _barrier = (delegate* unmanaged<IntPtr, int>)Export("MPI_Barrier");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        int initialized;
        Check(((delegate* unmanaged<int*, int>)Export("MPI_Initialized"))(&initialized), "MPI_Initialized");
        if (initialized == 0)
        {
            int provided;
            Check(((delegate* unmanaged<int*, IntPtr, int, int*, int>)Export("MPI_Init_thread"))(null, 0, ThreadSerialized, &provided),
                  "MPI_Init_thread");
        }
        int rank, size;
        Check(((delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank"))(_world, &rank), "MPI_Comm_rank");
        Check(((delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size"))(_world, &size), "MPI_Comm_size");
        (Rank, WorldSize) = (rank, size);
    }

    private static void Check(int code, string call)
    {
        if (code != 0) throw new MpiException($"{call} failed with MPI error {code}");
    }

    [DllImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    private static extern IntPtr TensorData(IntPtr tensor);

    private IntPtr TypeOf(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => _float,
        ScalarType.Float64 => _double,
        ScalarType.Int64 => _int64,
        ScalarType.Byte => _byte,
        _ => throw new ArgumentException($"no MPI type for {t.dtype}"),
    };

    /// <summary>
    /// Runs <paramref name="op"/> on a host-memory, contiguous version of the tensor in chunks of MPI-sized counts, then
    /// copies back.
    /// </summary>
    private void OnHost(Tensor tensor, Action<IntPtr, int, IntPtr> op)
    {
        if (!tensor.is_contiguous()) throw new ArgumentException("MPI collectives need a contiguous tensor");
        // CUDA tensors go through host memory (CUDA-aware MPI would take device pointers; Debian's Open MPI is not built with it).
        using var host = tensor.device.type == DeviceType.CPU ? tensor.alias() : tensor.cpu();
        var type = TypeOf(host);
        long n = host.numel(), size = host.element_size();
        IntPtr data = TensorData(host.Handle);
        for (long start = 0; start < n; start += MaxCount)
            op(data + (nint)(start * size), (int)Math.Min(MaxCount, n - start), type);
        if (tensor.device.type != DeviceType.CPU) tensor.copy_(host);
    }

    public void AllReduceSum(Tensor tensor) =>
        OnHost(tensor, (data, count, type) => Check(_allreduce(InPlace, data, count, type, _sum, _world), "MPI_Allreduce"));

    public double[] AllReduceSum(params double[] values)
    {
        var result = (double[])values.Clone();
        fixed (double* p = result) Check(_allreduce(InPlace, (IntPtr)p, result.Length, _double, _sum, _world), "MPI_Allreduce");
        return result;
    }


    public void Broadcast(Tensor tensor) =>
        OnHost(tensor, (data, count, type) => Check(_bcast(data, count, type, 0, _world), "MPI_Bcast"));

    public byte[][] AllGather(byte[] mine)
    {
        if ((long)mine.Length * WorldSize > Array.MaxLength)
            throw new MpiException($"all-gather of {mine.Length} bytes from each of {WorldSize} ranks exceeds one array ({Array.MaxLength} bytes)");
        var all = new byte[mine.Length * WorldSize];
        fixed (byte* send = mine)
        fixed (byte* receive = all)
            Check(_allgather((IntPtr)send, mine.Length, _byte, (IntPtr)receive, mine.Length, _byte, _world), "MPI_Allgather");
        return Enumerable.Range(0, WorldSize).Select(r => all.AsSpan(r * mine.Length, mine.Length).ToArray()).ToArray();
    }

    public void Barrier() => Check(_barrier(_world), "MPI_Barrier");

    public void Abort(int exitCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        _finalized = true;
        _abort(_world, exitCode);
    }

    public void Dispose()
    {
        if (_finalized) return;
        _finalized = true;
        _finalize();
    }
}

/// <summary>MPI could not be used (library missing, a call failed): an environment problem (exit 3).</summary>
public sealed class MpiException(string message) : Exception(message);
