using System.Globalization;
using System.Text.RegularExpressions;

namespace Swarm.Core.Exchange;

/// <summary>Parses rates such as <c>100mbit</c>, <c>12MiB/s</c>, <c>10MB/s</c>, <c>500kbit</c> or a plain number of bytes per second.</summary>
public static partial class ByteRate
{
    [GeneratedRegex(@"^\s*(?<n>\d+(\.\d+)?)\s*(?<p>[kKmMgGtT]?)(?<i>i?)(?<u>bits?|bps|B|)(/s|ps)?\s*$")]
    private static partial Regex Pattern();

    /// <summary>
    /// Bytes per second; 0 means unlimited. Throws <see cref="FormatException"/> with the accepted forms. The settings and
    /// the command line read rates with Swarm.Node's <c>Quantities.ParseRate</c>, the one reading of quantities; this copy
    /// stays only while the node's control API (ControlApi.cs) calls it, and goes once that reads rates through Quantities.
    /// </summary>
    public static long Parse(string text)
    {
        if (text.Trim() is "0" or "unlimited" or "") return 0;
        var m = Pattern().Match(text);
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

    public static string Format(double bytesPerSecond) => Units.Bytes(bytesPerSecond) + "/s";
}

public static class Units
{
    public static string Bytes(double bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        int i = 0;
        while (bytes >= 1024 && i < units.Length - 1) { bytes /= 1024; i++; }
        return i == 0 ? $"{bytes:0} {units[i]}" : $"{bytes:0.0} {units[i]}";
    }
}
