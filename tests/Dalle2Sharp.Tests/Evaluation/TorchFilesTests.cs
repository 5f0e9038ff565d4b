using Dalle2Sharp.Runtime;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Tests.Evaluation;

/// <summary>
/// Both .pth serializations: the legacy (pre-1.6) stream, written by PyTorch 1.13 itself
/// (Vectors/make_legacy_state_dict.py), and the zip format.
/// </summary>
public class TorchFilesTests
{
    private static string Legacy => Path.Combine(AppContext.BaseDirectory, "Evaluation", "Vectors", "legacy-state-dict.pth");

    [Fact]
    public void ReadsTheLegacyFormatWithViewsSharedStoragesAndDtypes()
    {
        var sd = TorchFiles.LoadStateDict(Legacy);
        Assert.Equal(8, sd.Count);
        var weight = (Tensor)sd["layer.weight"]!;
        Assert.Equal(new long[] { 3, 4 }, weight.shape);
        Assert.True(weight.equal(arange(12, dtype: float32).reshape(3, 4) / 8).all().item<bool>());
        // Transposed: same storage, strides (1, 4).
        Assert.True(((Tensor)sd["layer.weight_t"]!).equal(weight.t()).all().item<bool>());
        var half = (Tensor)sd["half"]!;
        Assert.Equal(ScalarType.Float16, half.dtype);
        Assert.True(half.equal((arange(6, dtype: float32) / 3).to(float16).reshape(2, 3)).all().item<bool>());
        Assert.Equal(new long[] { 1, -2, 3_000_000_000 }, ((Tensor)sd["counts"]!).data<long>().ToArray());
        Assert.Equal(new[] { true, false, true }, ((Tensor)sd["mask"]!).data<bool>().ToArray());
        // Two tensors on one storage, at offsets 2 and 5.
        Assert.Equal(new[] { -1.5f, -0.5f, 0.5f, 1.5f }, ((Tensor)sd["shared.a"]!).data<float>().ToArray());
        var b = (Tensor)sd["shared.b"]!;
        Assert.Equal(new long[] { 5, 1 }, b.shape);
        Assert.Equal(new[] { 1.5f, 2.5f, 3.5f, 4.5f, 5.5f }, b.data<float>().ToArray());
        var scalar = (Tensor)sd["scalar"]!;
        Assert.Equal(0, scalar.dim());
        Assert.Equal(2.25f, scalar.item<float>());
    }

    [Fact]
    public void ReadsTheZipFormat()
    {
        using var dir = new TestPaths.TempDir();
        string path = dir.File("zip.pth");
        PyTorchPickler.PickleStateDict(path, new Dictionary<string, Tensor> { ["w"] = arange(4, dtype: float32) });
        Assert.Equal(new[] { 0f, 1, 2, 3 }, ((Tensor)TorchFiles.LoadStateDict(path)["w"]!).data<float>().ToArray());
    }

    [Fact]
    public void ADamagedLegacyFileIsInvalidData()
    {
        using var dir = new TestPaths.TempDir();
        string path = dir.File("cut.pth");
        var bytes = File.ReadAllBytes(Legacy);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 40)]);
        var e = Assert.Throws<UserInputException>(() => TorchFiles.LoadStateDict(path));
        Assert.Contains("cut.pth", e.Message);
        File.WriteAllBytes(path, [1, 2]);
        Assert.Throws<UserInputException>(() => TorchFiles.LoadStateDict(path));
    }

    [Fact]
    public void APickleStringClaimingGigabytesIsRefusedBeforeAllocating()
    {
        // Protocol 2, then BINUNICODE ('X') with a length of 2^31 − 1 in a 10-byte file.
        using var dir = new TestPaths.TempDir();
        string path = dir.File("huge.pth");
        File.WriteAllBytes(path, [0x80, 0x02, (byte)'X', 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
        var e = Assert.Throws<UserInputException>(() => TorchFiles.LoadStateDict(path));
        Assert.Contains("claims 2147483647 bytes", e.Message);
    }
}
