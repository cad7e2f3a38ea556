using System.Net;
using System.Net.Sockets;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>What a user sees when a command cannot run: one line in Swarm's words on stderr, nothing on stdout.</summary>
public class CommandLineMessageTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AMistypedOptionIsReportedOnStderrAndStdoutStaysEmpty()
    {
        await using var get = await SwarmProcess.RunAsync(Timeout, "get", "--peeer", "x");
        Assert.Equal(1, get.ExitCode);
        Assert.Equal("", get.Stdout.Trim());
        Assert.Contains("Did you mean", get.Stderr, StringComparison.Ordinal);
        // Help asked for is a result: it stays on stdout.
        await using var help = await SwarmProcess.RunAsync(Timeout, "get", "--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("--output", help.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ANodeWhosePortIsTakenSaysSoInOneLineWithoutAStackTrace()
    {
        using var dir = new TempDirectory();
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        int port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        await using var node = await SwarmProcess.RunAsync(Timeout, "node", "--data-dir", dir.Combine("d"), "--listen", $"127.0.0.1:{port}", "--metrics", "off", "--mirror", "off");
        Assert.NotEqual(0, node.ExitCode);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", node.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", node.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", node.Stderr, StringComparison.Ordinal);
        Assert.Single(node.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
