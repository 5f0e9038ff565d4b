using Dalle2Sharp.Runtime;
using TorchSharp;

namespace Dalle2Sharp.Tests;

public class DevicesTests
{
    [Fact]
    public void CpuResolves() => Assert.Equal(DeviceType.CPU, Devices.Resolve("cpu").type);

    [Fact]
    public void MissingCudaIsAClearError()
    {
        if (torch.cuda.is_available())
        {
            Assert.Throws<UserInputException>(() => Devices.Resolve($"cuda:{torch.cuda.device_count()}"));
            return;
        }
        var e = Assert.Throws<UserInputException>(() => Devices.Resolve("cuda:0"));
        Assert.Contains("no CUDA device", e.Message);
    }
}
