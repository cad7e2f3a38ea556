using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Swarm.Node;

/// <summary>
/// Says the node is ready once every listener is up: the peer port and the DHT (<see cref="NodeRuntime"/>), the output
/// socket (<see cref="HandedOutputs"/>), and Kestrel's control socket, metrics and mirror addresses. The host calls
/// <see cref="StartedAsync"/> after every hosted service has started, Kestrel included, and before it signals
/// ApplicationStarted, which is when systemd's lifetime (UseSystemd) sends READY=1: so READY=1 follows this line and the
/// control socket's mode, never precedes them. (A callback on ApplicationStarted would run after the lifetime's: the token
/// runs its callbacks newest first.)
/// </summary>
public sealed class ReadyReport(NodeConfig config, ILogger<ReadyReport> logger) : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(config.ControlSocket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        catch (IOException) { }
        logger.LogInformation("ready: control socket {Socket}; metrics {Metrics}; registry mirror {Mirror}", config.ControlSocket,
            config.Metrics?.ToString() ?? "off", config.Mirror?.ToString() ?? "off");
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
