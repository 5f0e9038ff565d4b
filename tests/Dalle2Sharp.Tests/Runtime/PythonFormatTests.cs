using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tests.Runtime;

public class PythonFormatTests
{
    private static readonly Dictionary<string, object> Fields = new()
    {
        ["epoch"] = 7, ["sample"] = 1234567L, ["samples_seen"] = 42L, ["next_task"] = "train", ["loss"] = 0.125, ["neg"] = -3,
        ["tiny"] = 1.5e-5, ["big"] = 1234567.0, ["one"] = 1.0,
    };

    /// <summary>Expected strings are what CPython 3.11's str.format gives for the same fields.</summary>
    [Theory]
    [InlineData("ckpt/{epoch}.pth", "ckpt/7.pth")]
    [InlineData("ckpt/{epoch:03d}_{samples_seen}.pth", "ckpt/007_42.pth")]
    [InlineData("{sample:,}", "1,234,567")]
    [InlineData("{sample:_}", "1_234_567")]
    [InlineData("{epoch:>4}|{epoch:<4}|{epoch:^5}", "   7|7   |  7  ")]
    [InlineData("{epoch:*^7d}", "***7***")]
    [InlineData("{neg:05d}", "-0003")]
    [InlineData("{epoch:+d}", "+7")]
    [InlineData("{loss:.3f}", "0.125")]
    [InlineData("{loss:.2e}", "1.25e-01")]
    [InlineData("{loss:.1%}", "12.5%")]
    [InlineData("{loss}", "0.125")]
    [InlineData("{next_task:>6}", " train")]
    [InlineData("{next_task:.3}", "tra")]
    [InlineData("{{epoch}}_{epoch}", "{epoch}_7")]
    [InlineData("{loss:.2g}", "0.12")]
    [InlineData("{loss:g}", "0.125")]
    [InlineData("{tiny:g}", "1.5e-05")]
    [InlineData("{tiny}", "1.5e-05")]
    [InlineData("{big:.3g}", "1.23e+06")]
    [InlineData("{big:g}", "1.23457e+06")]
    [InlineData("{one}", "1.0")]
    [InlineData("{one:.3}", "1.0")]
    [InlineData("{epoch:g}", "7")]
    [InlineData("{epoch:.2f}", "7.00")]
    public void FormatsAsPython(string template, string expected) => Assert.Equal(expected, PythonFormat.Format(template, Fields));

    [Theory]
    [InlineData("{epochs}", "unknown field {epochs}")]
    [InlineData("{epoch", "is not closed")]
    [InlineData("epoch}", "single '}'")]
    [InlineData("{epoch:q}", "format code 'q'")]
    [InlineData("{next_task:d}", "format code 'd' for a string")]
    public void BadTemplatesNameTheProblem(string template, string message) =>
        Assert.Contains(message, Assert.Throws<FormatException>(() => PythonFormat.Format(template, Fields)).Message);
}
