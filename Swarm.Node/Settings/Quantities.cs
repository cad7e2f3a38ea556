using System.Globalization;
using System.Text.RegularExpressions;

namespace Swarm.Node;

/// <summary>
/// The one reading of quantities with units, for every setting (<see cref="NodeConfig"/>) and command-line option: sizes
/// (<c>512MiB</c>, <c>50GiB</c>), rates (<c>100mbit</c>, <c>12MiB/s</c>) and durations (<c>500ms</c>, <c>30s</c>, <c>7d</c>).
/// Each throws <see cref="FormatException"/> with a message that shows the accepted forms.
/// </summary>
public static partial class Quantities
{
    /// <summary>Sizes like 512MiB, 50GiB, 1TB, 1048576 (bytes).</summary>
    public static long ParseSize(string text)
    {
        string s = text.Trim();
        int i = 0;
        while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.')) i++;
        if (i == 0 || !double.TryParse(s[..i], NumberStyles.Float, CultureInfo.InvariantCulture, out double n))
            throw new FormatException($"'{text}' is not a size: write e.g. 50GiB, 512MiB or a number of bytes");
        double unit = s[i..].Trim().ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "K" or "KB" => 1e3, "KIB" => 1024,
            "M" or "MB" => 1e6, "MIB" => 1 << 20,
            "G" or "GB" => 1e9, "GIB" => 1 << 30,
            "T" or "TB" => 1e12, "TIB" => 1L << 40,
            _ => throw new FormatException($"'{text}' has an unknown unit: use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"),
        };
        return checked((long)(n * unit));
    }

    [GeneratedRegex(@"^\s*(?<n>\d+(\.\d+)?)\s*(?<p>[kKmMgGtT]?)(?<i>i?)(?<u>bits?|bps|B|)(/s|ps)?\s*$")]
    private static partial Regex RatePattern();

    /// <summary>
    /// Rates such as <c>100mbit</c>, <c>12MiB/s</c>, <c>10MB/s</c>, <c>500kbit</c> or a plain number of bytes per second,
    /// in bytes per second; <c>0</c>, <c>unlimited</c> or nothing is 0 (unlimited).
    /// </summary>
    public static long ParseRate(string text)
    {
        if (text.Trim() is "0" or "unlimited" or "") return 0;
        var m = RatePattern().Match(text);
        if (!m.Success)
            throw new FormatException($"'{text}' is not a rate; write for example 100mbit, 12MiB/s, 10MB/s or a number of bytes per second");
        double n = double.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture);
        bool binary = m.Groups["i"].Value.Length > 0;
        double unit = m.Groups["p"].Value.ToLowerInvariant() switch
        {
            "k" => binary ? 1024d : 1e3,
            "m" => binary ? 1024d * 1024 : 1e6,
            "g" => binary ? 1024d * 1024 * 1024 : 1e9,
            "t" => binary ? 1024d * 1024 * 1024 * 1024 : 1e12,
            _ => 1,
        };
        string u = m.Groups["u"].Value;
        bool bits = u.StartsWith("bit", StringComparison.Ordinal) || u == "bps";
        double bytes = n * unit / (bits ? 8 : 1);
        if (bytes < 1) throw new FormatException($"rate '{text}' is below one byte per second");
        return (long)bytes;
    }

    /// <summary>Durations: 500ms, 30s, 10m, 12h, 7d, or a plain number of seconds.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        string s = text.Trim().ToLowerInvariant();
        (string number, double seconds) = s.EndsWith("ms", StringComparison.Ordinal) ? (s[..^2], 0.001)
            : s.EndsWith('s') ? (s[..^1], 1)
            : s.EndsWith('m') ? (s[..^1], 60)
            : s.EndsWith('h') ? (s[..^1], 3600)
            : s.EndsWith('d') ? (s[..^1], 86400)
            : (s, 1);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || value < 0 || double.IsInfinity(value * seconds))
            throw new FormatException($"'{text}' is not a duration: write e.g. 500ms, 30s, 10m, 12h or 7d");
        return TimeSpan.FromSeconds(value * seconds);
    }
}
