using Microsoft.Extensions.Logging;

namespace Swarm.Cli;

/// <summary>Log lines on stderr, one per event, prefixed with "swarm:" and the level.</summary>
internal sealed class StderrLogger(LogLevel minimum, ProgressLine? progress) : ILogger
{
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
        string line = $"swarm: {level}{formatter(state, exception)}";
        if (progress != null) progress.WriteLine(line);
        else Console.Error.WriteLine(line);
    }
}
