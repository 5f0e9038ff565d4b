using System.Reflection;
using System.Runtime.InteropServices;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// Keeps TorchSharp from freeing a number while libtorch still reads it.
/// <para>
/// TorchSharp 0.107 turns every number given to a tensor operation into a native <c>Scalar</c> (<c>x * 0.5</c>,
/// <c>a + b</c> with its implicit alpha of 1, and most optimizer updates). Nothing holds that object once its
/// handle has been passed to native code, so a garbage collection started by any other thread during the call
/// lets .NET's finalizer free it while the operation is still reading it: the step then fails with libtorch's
/// "Expected false to be true" from <c>Scalar::toFloat</c>, or, worse, computes with whatever the freed memory
/// holds (dotnet/TorchSharp#1434, open). A thread forcing collections makes it happen within seconds (tests:
/// <c>ScalarGuardTests</c>); in real runs data-loader and tracker threads do.
/// </para>
/// <para>
/// The fix is at the one place every such release goes through: TorchSharp's native calls are bound through
/// <c>libdalle2_scalar_guard.so</c> (built from ScalarGuard.c), which depends on libLibTorchSharp.so so that every
/// function resolves to the original, except <c>THSTorch_dispose_scalar</c>: that one holds each released Scalar
/// back for five seconds before freeing it, far longer than any operation takes to read its arguments, at a
/// bounded cost (at most 262,144 held: about 12 MB). Nothing else changes: same kernels, same numbers.
/// </para>
/// </summary>
public static unsafe class ScalarGuard
{
    public const string LibraryFile = "libdalle2_scalar_guard.so";
    private const string TorchSharpLibrary = "LibTorchSharp";

    private static readonly object Gate = new();
    private static IntPtr _library;
    private static bool _installed;

    /// <summary>One line for the training log: active, or why not.</summary>
    public static string Status { get; private set; } = "not installed";

    /// <summary>True once TorchSharp's native calls go through the guard.</summary>
    public static bool Active { get; private set; }

    /// <summary>Routes TorchSharp's native calls through the guard. Idempotent; must run before TorchSharp's first call.</summary>
    public static void Install()
    {
        lock (Gate)
        {
            if (_installed) return;
            _installed = true;
            var path = Path.Combine(AppContext.BaseDirectory, LibraryFile);
            if (!File.Exists(path))
            {
                Status = $"NOT ACTIVE: {path} is missing (it is built with the project); rare crashes or wrong numbers are possible";
                return;
            }
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(TorchSharp.torch).Assembly, Resolve);
            }
            catch (InvalidOperationException e)
            {
                Status = $"NOT ACTIVE: TorchSharp's native library resolver was already set ({e.Message})";
                return;
            }
            Status = "installed, waiting for TorchSharp's first native call";
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != TorchSharpLibrary) return IntPtr.Zero;
        lock (Gate)
        {
            if (_library != IntPtr.Zero) return _library;
            var path = Path.Combine(AppContext.BaseDirectory, LibraryFile);
            if (!NativeLibrary.TryLoad(path, out var library))
            {
                Status = $"NOT ACTIVE: {path} could not be loaded; rare crashes or wrong numbers are possible";
                return IntPtr.Zero;
            }
            var ready = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "dalle2_scalar_guard_ready");
            if (ready() == 0)
            {
                Status = "NOT ACTIVE: libLibTorchSharp.so's THSTorch_dispose_scalar was not found through the guard";
                return IntPtr.Zero;
            }
            _library = library;
            Active = true;
            Status = "active (TorchSharp's Scalars are freed 5 s after release)";
            return library;
        }
    }

    /// <summary>Scalars released to the guard so far, freed so far, and waiting now (for tests and diagnostics).</summary>
    public static (ulong Released, ulong Freed, uint Waiting) Stats()
    {
        if (_library == IntPtr.Zero) return (0, 0, 0);
        var stats = (delegate* unmanaged<ulong*, ulong*, uint*, void>)NativeLibrary.GetExport(_library, "dalle2_scalar_guard_stats");
        ulong released, freed;
        uint waiting;
        stats(&released, &freed, &waiting);
        return (released, freed, waiting);
    }
}
