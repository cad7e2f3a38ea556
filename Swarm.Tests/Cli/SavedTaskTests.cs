using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>A task list from an earlier run that names something gone: the node still starts.</summary>
public class SavedTaskTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task ATaskWhoseFileHasGoneIsReportedOnceAndDroppedAndTheNodeServesTheRest()
    {
        using var dir = new TempDirectory();
        string data = dir.Combine("data");
        string file = dir.Combine("served.bin");
        var bytes = new byte[700_000];
        new Random(3).NextBytes(bytes);
        File.WriteAllBytes(file, bytes);

        // First run: seed a file through the node, so its store has something to serve after the restart.
        int port = FreePort.Get();
        string id;
        await using (var first = SwarmProcess.Start("node", "--data-dir", data, "--listen", $"127.0.0.1:{port}", "--metrics", "off", "--mirror", "off"))
        {
            await Poll.UntilAsync(() => first.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || first.HasExited, Timeout, "the node to start");
            await using var seed = await SwarmProcess.RunAsync(Timeout, "seed", file, "--data-dir", data);
            Assert.True(seed.ExitCode == 0, seed.ToString());
            id = seed.Stdout.Trim();
            first.Terminate();
            await first.WaitForExitAsync(Timeout);
        }

        // A task list as an interrupted run leaves it: a seed of a file that has since been moved away.
        string tasks = Path.Combine(data, "tasks.json");
        File.WriteAllText(tasks, JsonSerializer.Serialize(new[]
        {
            new { Id = "0badc0ffee00", Request = new { Kind = "seed", Source = dir.Combine("moved-away.bin") } },
        }));

        await using var node = SwarmProcess.Start("node", "--data-dir", data, "--listen", $"127.0.0.1:{port}", "--metrics", "off", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        var lines = node.Stderr.Split('\n').Where(l => l.Contains("0badc0ffee00", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        Assert.Contains(tasks, lines[0], StringComparison.Ordinal);
        Assert.Contains("moved-away.bin", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("0badc0ffee00", File.ReadAllText(tasks), StringComparison.Ordinal); // dropped, not retried at every start

        // Everything else is served: another data directory fetches the seeded file from this node.
        await using var get = await SwarmProcess.RunAsync(Timeout, "get", id, "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("other"),
            "--peer", $"127.0.0.1:{port}", "--listen", "127.0.0.1:0");
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(bytes, File.ReadAllBytes(dir.Combine("out.bin")));
    }
}
