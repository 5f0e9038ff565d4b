using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// Settings libtorch's native code reads from the environment, applied before its first kernel runs.
/// <para>
/// oneDNN (libtorch 2.10's CPU convolutions) computes wrong float32 convolution input-gradients with its
/// AVX-512 kernels on at least one CPU these tests run on (AMD EPYC with AVX-512): 3×3 and 15×15
/// convolutions differed from the float64 reference by up to 3.7 (dx), which made training diverge to
/// NaN. Capped at AVX2 the same kernels agree to 1e-5 (tests/…/NativeKernelTests). So unless the user
/// chose an ISA (DNNL_MAX_CPU_ISA set), oneDNN is capped at AVX2.
/// </para>
/// </summary>
public static class NativeSetup
{
    public const string OneDnnIsaVariable = "DNNL_MAX_CPU_ISA";
    public const string OneDnnSafeIsa = "AVX2";

    /// <summary>What was decided, for the training log.</summary>
    public static string OneDnnIsa { get; private set; } = "";

    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "must run before any libtorch kernel")]
    internal static void Initialize() => Configure();

    /// <summary>Idempotent; call it first thing in a process that uses TorchSharp before touching this assembly.</summary>
    public static void Configure()
    {
        ScalarGuard.Install();
        ConfigureAllocator();
        if (!_nnpackDone)
        {
            _nnpackDone = true;
            DisableNnpack();
        }
        // Numbers, dates and paths format the same whatever the user's locale (logs, templates, JSON); ICU
        // stays loaded for what needs Unicode data (CLIP's caption normalisation: NFC, NFKC).
        System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
        System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
        if (OneDnnIsa.Length > 0) return;
        var chosen = Environment.GetEnvironmentVariable(OneDnnIsaVariable);
        if (!string.IsNullOrEmpty(chosen))
        {
            OneDnnIsa = $"{chosen} (from {OneDnnIsaVariable})";
            return;
        }
        // .NET keeps its own copy of the environment: native code only sees setenv's.
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) SetEnv(OneDnnIsaVariable, OneDnnSafeIsa, 0);
        Environment.SetEnvironmentVariable(OneDnnIsaVariable, OneDnnSafeIsa);
        OneDnnIsa = $"{OneDnnSafeIsa} (capped: oneDNN's AVX-512 convolution gradients were wrong on a tested CPU; set {OneDnnIsaVariable} to choose)";
    }

    /// <summary>The glibc tunables a restarted process runs with: huge pages for the heap, and the thresholds below.</summary>
    public const string AllocatorTunables =
        "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456";
    public const string RestartVariable = "DALLE2_ALLOCATOR_RESTART";

    /// <summary>
    /// Restarts this process (execve of the same executable and arguments, same PID) with <see cref="AllocatorTunables"/>
    /// in GLIBC_TUNABLES, which glibc reads only at start. Transparent huge pages for the heap cut the page faults of the
    /// first steps (each costs a VM exit on these machines): time from process start to the first finished training
    /// step of the test-config Unet 2.55 → 1.41–1.52 s, steady step −5 %, peak RSS +3–5 % (3 rounds, 2 threads,
    /// bench/model-side-by-side.sh's train-test-4). Does nothing when the user tuned malloc (GLIBC_TUNABLES or MALLOC_*
    /// set), off Linux/glibc, or with DALLE2_ALLOCATOR_RESTART=0; if execve fails the process goes on as it is.
    /// Call it first in Main, before threads or files matter.
    /// </summary>
    public static void RestartWithAllocatorTunables()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(RestartVariable) == "0") return;
        var environment = Environment.GetEnvironmentVariables();
        if (environment.Keys.Cast<string>().Any(k => k.StartsWith("MALLOC_", StringComparison.Ordinal) || k == "GLIBC_TUNABLES")) return;
        try
        {
            if (Marshal.PtrToStringAnsi(GnuGetLibcVersion()) is null) return;
            var argv = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
            // The oneDNN cap this process set itself is set again by the restarted one (and logged as ours, not the user's).
            bool ownCap = OneDnnIsa.StartsWith(OneDnnSafeIsa + " (capped", StringComparison.Ordinal);
            var envp = environment.Keys.Cast<string>().Where(k => !(ownCap && k == OneDnnIsaVariable))
                .Select(k => $"{k}={environment[k]}").Append($"GLIBC_TUNABLES={AllocatorTunables}");
            ExecVe("/proc/self/exe", [.. argv, null], [.. envp, null]);   // returns only on failure
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException or IOException or UnauthorizedAccessException)
        {
            // Not glibc, or no /proc: run with the allocator as it is.
        }
    }

    [DllImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static extern IntPtr GnuGetLibcVersion();

    [DllImport("libc", EntryPoint = "execve", SetLastError = true)]
    private static extern int ExecVe(string path, string?[] argv, string?[] envp);

    /// <summary>What was decided for glibc's allocator, for the training log.</summary>
    public static string Allocator { get; private set; } = "";

    // glibc's mallopt parameters (malloc.h).
    private const int MallocTrimThreshold = -1, MallocMmapThreshold = -3;
    /// <summary>glibc's largest allowed mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): 32 MiB.</summary>
    private const int MmapThresholdBytes = 32 << 20;
    private const int TrimThresholdBytes = 256 << 20;

    /// <summary>
    /// libtorch allocates every activation with malloc. With glibc's defaults, blocks above the (adaptive) mmap
    /// threshold are mapped and unmapped per allocation and the heap top is trimmed eagerly, so each training or
    /// sampling step pays page faults and zeroing for memory it just gave back: measured on the test-config Unet,
    /// one guided sampling step 2,035 → 1,358 ms and a training step 1,705 → 1,536 ms with blocks up to 32 MiB served
    /// from the heap and up to 256 MiB of free heap kept (bench/model-side-by-side.sh, 2 threads), at a peak RSS within
    /// 10 % of the defaults. Left alone when the user tuned malloc (MALLOC_*_ or GLIBC_TUNABLES set).
    /// </summary>
    private static void ConfigureAllocator()
    {
        if (Allocator.Length > 0 || !OperatingSystem.IsLinux()) return;
        var tuned = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .FirstOrDefault(k => k.StartsWith("MALLOC_", StringComparison.Ordinal) || k == "GLIBC_TUNABLES");
        if (Environment.GetEnvironmentVariable("GLIBC_TUNABLES") == AllocatorTunables)
        {
            Allocator = "glibc malloc: huge pages for the heap, blocks up to 32 MiB from the heap, 256 MiB of free heap kept " +
                        $"(GLIBC_TUNABLES, set at start; {RestartVariable}=0 to run without)";
            return;
        }
        if (tuned is not null)
        {
            Allocator = $"glibc malloc as the environment sets it ({tuned})";
            return;
        }
        try
        {
            bool ok = MallOpt(MallocMmapThreshold, MmapThresholdBytes) == 1 & MallOpt(MallocTrimThreshold, TrimThresholdBytes) == 1;
            Allocator = ok ? "glibc malloc: blocks up to 32 MiB from the heap, 256 MiB of free heap kept (mallopt)"
                           : "glibc malloc defaults (mallopt refused the thresholds)";
        }
        catch (EntryPointNotFoundException)
        {
            Allocator = "the C library's allocator defaults (not glibc)";
        }
    }

    /// <summary>
    /// Turns libtorch's NNPACK convolution path off (at::globalContext().setUserEnabledNNPACK(false); TorchSharp has no
    /// binding for it). For a bfloat16 convolution on a CPU, libtorch asks whether NNPACK is available before it looks at
    /// the type, NNPACK fails to initialise on these CPUs, and the failure is logged on every call: 10,000 warning lines
    /// per quickstart epoch with train.amp, and for float32 convolutions at one thread (mpirun ranks) too. Done at start
    /// for every process: where NNPACK would initialise, oneDNN serves those convolutions instead. Returns whether it was done.
    /// </summary>
    private static bool _nnpackDone;

    public static unsafe bool DisableNnpack()
    {
        if (!OperatingSystem.IsLinux()) return false;
        if (!NativeLibrary.TryLoad(Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so"), out var torch)) return false;
        if (!NativeLibrary.TryGetExport(torch, "_ZN2at13globalContextEv", out var globalContext)
            || !NativeLibrary.TryGetExport(torch, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setEnabled)) return false;
        var context = ((delegate* unmanaged<IntPtr>)globalContext)();
        ((delegate* unmanaged<IntPtr, byte, void>)setEnabled)(context, 0);
        return true;
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int MallOpt(int parameter, int value);

    [DllImport("libc", EntryPoint = "setenv", SetLastError = true)]
    private static extern int SetEnv(string name, string value, int overwrite);
}
