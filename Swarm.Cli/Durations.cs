using System.Globalization;

namespace Swarm.Cli;

internal static class Durations
{
    /// <summary>Parses 500ms, 30s, 5m, 2h or a plain number of seconds.</summary>
    public static TimeSpan Parse(string text, string option)
    {
        string s = text.Trim().ToLowerInvariant();
        (string number, double scale) = s.EndsWith("ms", StringComparison.Ordinal) ? (s[..^2], 0.001)
            : s.EndsWith('s') ? (s[..^1], 1)
            : s.EndsWith('m') ? (s[..^1], 60)
            : s.EndsWith('h') ? (s[..^1], 3600)
            : (s, 1);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || value <= 0)
            throw new UsageException($"{option}: '{text}' is not a duration; write for example 30s, 5m or 500ms");
        return TimeSpan.FromSeconds(value * scale);
    }
}
