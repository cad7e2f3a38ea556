using Microsoft.Extensions.Logging;

namespace Swarm.Cli;

/// <summary>
/// Log lines on stderr, one per event, prefixed with "swarm:" and the level; with --verbose (debug) also the time since the
/// process started, so the phases of a run (joining, the cold-start election, the first peer) can be read off the log.
/// </summary>
internal sealed class StderrLogger(LogLevel minimum, ProgressLine? progress) : ILogger
{
    /// <summary>When the process started, on the <see cref="Environment.TickCount64"/> clock; read only for debug logs.</summary>
    private readonly long _startedAt = minimum <= LogLevel.Debug
        ? Environment.TickCount64 - (long)(DateTime.Now - System.Diagnostics.Process.GetCurrentProcess().StartTime).TotalMilliseconds
        : 0;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string level = logLevel switch
        {
            LogLevel.Warning => "warning: ",
            LogLevel.Error or LogLevel.Critical => "error: ",
            LogLevel.Debug or LogLevel.Trace => "debug: ",
            _ => "",
        };
        string line = minimum <= LogLevel.Debug
            ? $"swarm: [{Environment.TickCount64 - _startedAt,6} ms] {level}{formatter(state, exception)}"
            : $"swarm: {level}{formatter(state, exception)}";
        if (progress != null) progress.WriteLine(line);
        else Console.Error.WriteLine(line);
    }
}
