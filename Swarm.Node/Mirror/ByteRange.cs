using System.Globalization;

namespace Swarm.Node.Mirror;

/// <summary>The single byte range of a blob request (<c>Range: bytes=…</c>).</summary>
public static class ByteRange
{
    /// <summary>
    /// Parses a single <c>bytes=</c> range (first-last, first-, -suffix). False: no usable single range (serve the whole
    /// blob, as RFC 9110 allows). <paramref name="satisfiable"/> false: well-formed but outside the blob (416).
    /// </summary>
    public static bool TryParse(string header, long length, out long start, out long end, out bool satisfiable)
    {
        start = end = 0;
        satisfiable = true;
        if (!header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase)) return false;
        string spec = header[6..].Trim();
        if (spec.Contains(',', StringComparison.Ordinal)) return false;
        int dash = spec.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0) return false;
        string a = spec[..dash].Trim(), b = spec[(dash + 1)..].Trim();
        const NumberStyles Digits = NumberStyles.None;
        var inv = CultureInfo.InvariantCulture;
        if (a.Length == 0)
        {
            if (!long.TryParse(b, Digits, inv, out long suffix)) return false;
            if (suffix == 0 || length == 0) { satisfiable = false; return true; }
            start = Math.Max(0, length - suffix);
            end = length - 1;
            return true;
        }
        if (!long.TryParse(a, Digits, inv, out start)) return false;
        if (b.Length == 0) end = length - 1;
        else if (!long.TryParse(b, Digits, inv, out end) || end < start) return false;
        if (start >= length) { satisfiable = false; return true; }
        end = Math.Min(end, length - 1);
        return true;
    }
}
