using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Runtime;

/// <summary>Turns the config's device string into a torch device, or says clearly why it cannot be used.</summary>
public static class Devices
{
    public static Device Resolve(string name)
    {
        if (name == "cpu") return CPU;
        if (!name.StartsWith("cuda")) throw new UserInputException($"device \"{name}\" is not one of cpu, cuda, cuda:N");
        if (!cuda.is_available())
            throw new UserInputException($"device \"{name}\" was asked for, but this build's libtorch has no CUDA device available " +
                                         "(the default build ships the CPU libtorch: swap the libtorch-cpu-linux-x64 package " +
                                         "for a CUDA one, or set train.device to cpu)");
        int index = name.Length > 5 ? int.Parse(name[5..]) : 0;
        int count = cuda.device_count();
        if (index >= count) throw new UserInputException($"device \"{name}\" does not exist: {count} CUDA device(s) visible");
        return new Device(DeviceType.CUDA, index);
    }
}
