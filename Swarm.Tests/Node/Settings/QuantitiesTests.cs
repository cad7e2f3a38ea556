using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Tests.Node.Settings;

/// <summary>
/// Quantities with units, read one way by every setting and option: rate limits for the exchange (<c>--upload-rate</c>,
/// <c>--download-rate</c>), sizes (<c>quota</c>) and durations (<c>task-ttl</c>, <c>--stall-timeout</c>).
/// </summary>
public sealed class QuantitiesTests
{
    [Theory]
    [InlineData("100mbit", 12_500_000L)]
    [InlineData("100Mbit", 12_500_000L)]
    [InlineData("100mbits", 12_500_000L)]
    [InlineData("100Mbps", 12_500_000L)]
    [InlineData("12MiB/s", 12L * 1048576)]
    [InlineData("12MiB", 12L * 1048576)]
    [InlineData("10MB/s", 10_000_000L)]
    [InlineData("10MBps", 10_000_000L)]
    [InlineData("500kbit", 62_500L)]
    [InlineData("1Gbit", 125_000_000L)]
    [InlineData("2GiB/s", 2L * 1024 * 1024 * 1024)]
    [InlineData("1.5MB/s", 1_500_000L)]
    [InlineData("4096", 4096L)]
    [InlineData(" 4096 ", 4096L)]
    [InlineData("8bit", 1L)]
    [InlineData("0", 0L)]
    [InlineData("unlimited", 0L)]
    public void Parses_rates(string text, long bytesPerSecond)
    {
        Assert.Equal(bytesPerSecond, Quantities.ParseRate(text));
    }

    [Theory]
    [InlineData("100mb")]      // ambiguous: bits or bytes?
    [InlineData("fast")]
    [InlineData("10 MB/h")]
    [InlineData("-5MB/s")]
    [InlineData("MB/s")]
    [InlineData("1e6")]
    [InlineData("0.5")]        // below one byte per second
    [InlineData("4bit")]
    public void Rejects_what_is_not_a_rate(string text)
    {
        var e = Assert.Throws<FormatException>(() => Quantities.ParseRate(text));
        Assert.Contains(text.Trim(), e.Message);
    }

    [Theory]
    [InlineData("50GiB", 50L << 30)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("1TB", 1_000_000_000_000L)]
    [InlineData("10 mb", 10_000_000L)]
    [InlineData("1048576", 1048576L)]
    [InlineData("1.5KiB", 1536L)]
    [InlineData("0", 0L)]
    public void Parses_sizes(string text, long bytes) => Assert.Equal(bytes, Quantities.ParseSize(text));

    [Theory]
    [InlineData("")]
    [InlineData("big")]
    [InlineData("5 parsecs")]
    [InlineData("MiB")]
    public void Rejects_what_is_not_a_size(string text)
    {
        var e = Assert.Throws<FormatException>(() => Quantities.ParseSize(text));
        Assert.Contains("GiB", e.Message, StringComparison.Ordinal);
    }
}
