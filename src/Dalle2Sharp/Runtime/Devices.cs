using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Runtime;

/// <summary>Turns the config's device string into a torch device, or says clearly why it cannot be used.</summary>
public static class Devices
{
    /// <summary>What <see cref="EnableTf32"/> did, for the training log.</summary>
    public static string Tf32Status { get; private set; } = "TF32 not set (no CUDA device used)";

    /// <summary>
    /// TF32 tensor-core matmuls and convolutions on Ampere and newer GPUs (PyTorch leaves matmuls in full float32 by
    /// default since 1.12; convolutions already use TF32): ~10-bit mantissa products with float32 accumulation, the
    /// precision mixed-precision diffusion training runs at. Set DALLE2_TF32=0 to keep full float32.
    /// </summary>
    public static void EnableTf32()
    {
        bool on = Environment.GetEnvironmentVariable("DALLE2_TF32") != "0";
        backends.cuda.matmul.allow_tf32 = on;
        backends.cudnn.allow_tf32 = on;
        Tf32Status = on ? "TF32 matmuls and convolutions on (DALLE2_TF32=0 for full float32)" : "TF32 off (DALLE2_TF32=0)";
    }

    public static Device Resolve(string name)
    {
        if (name == "cpu") return CPU;
        if (!name.StartsWith("cuda")) throw new UserInputException($"device \"{name}\" is not one of cpu, cuda, cuda:N");
        if (!cuda.is_available())
            throw new UserInputException($"device \"{name}\" was asked for, but this build's libtorch has no CUDA device available " +
                                         "(the default build ships the CPU libtorch: build with -p:TorchBackend=cuda, " +
                                         "or set train.device to cpu)");
        int index = name.Length > 5 ? int.Parse(name[5..]) : 0;
        int count = cuda.device_count();
        if (index >= count) throw new UserInputException($"device \"{name}\" does not exist: {count} CUDA device(s) visible");
        EnableTf32();
        return new Device(DeviceType.CUDA, index);
    }
}
