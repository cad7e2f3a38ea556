using Swarm.Node;

namespace Swarm.Cli;

internal static class Durations
{
    /// <summary>A positive duration for a command-line option, read as <see cref="Quantities.ParseDuration"/> reads settings.</summary>
    public static TimeSpan Parse(string text, string option)
    {
        TimeSpan value;
        try
        {
            value = Quantities.ParseDuration(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"{option}: {e.Message}");
        }
        return value > TimeSpan.Zero ? value : throw new UsageException($"{option}: '{text}' must be longer than zero; write for example 30s, 5m or 500ms");
    }
}
