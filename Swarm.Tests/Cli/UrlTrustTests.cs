using System.Diagnostics;
using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;
using Swarm.Core.Sources;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// What a URL means cannot be changed by a node: pointers are used only when the origin confirms them (or a trusted
/// publisher signed them), stale pointers give way to the current version, and forged leases hold nobody back. Real
/// <c>swarm</c> processes and an HTTP origin the test serves.
/// </summary>
[Collection(DhtNetworkCollection.Name)] // several processes at once: run alone
public class UrlTrustTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(120);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static byte[] RandomBytes(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static async Task<SwarmProcess> SeedAsync(TempDirectory dir, string name, string url, int port, int? bootstrap)
    {
        var args = new List<string> { "seed", url, "--data-dir", dir.Combine(name), "--listen", $"127.0.0.1:{port}" };
        if (bootstrap is { } b) args.AddRange(["--bootstrap", $"127.0.0.1:{b}"]);
        var seed = SwarmProcess.Start([.. args]);
        await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), ProcessTimeout);
        return seed;
    }

    [Fact]
    public async Task APointerToOtherBytesWithAHigherSequenceNeverReachesAnOutputFile()
    {
        using var dir = new TempDirectory();
        var good = RandomBytes(3 * 1024 * 1024 + 5, 1);
        var evil = RandomBytes(3 * 1024 * 1024 + 5, 2); // same length: only the ETag tells them apart
        await using var origin = new CountingOrigin();
        origin.Serve("/model.bin", good);
        string url = origin.Url("/model.bin");

        int honestPort = FreePort.Get();
        await using var honest = await SeedAsync(dir, "honest", url, honestPort, null);
        // The attacker's own origin answers other bytes for the same name; it ingests them later, so its pointer has the
        // higher sequence number.
        origin.Serve("/model.bin", evil);
        await using var attacker = await SeedAsync(dir, "attacker", url, FreePort.Get(), honestPort);
        origin.Serve("/model.bin", good);
        long originBefore = origin.BytesSent;

        // With the origin up, every get writes the origin's bytes, from the swarm (the honest seed), not the origin.
        var gets = Enumerable.Range(0, 5).Select(i => SwarmProcess.RunAsync(ProcessTimeout, "get", url, "-o", dir.Combine($"out{i}"), "--data-dir", dir.Combine($"g{i}"),
            "--bootstrap", $"127.0.0.1:{honestPort}", "--listen", "127.0.0.1:0")).ToList();
        var done = await Task.WhenAll(gets);
        for (int i = 0; i < 5; i++)
        {
            Assert.True(done[i].ExitCode == 0, done[i].ToString());
            Assert.Equal(good, File.ReadAllBytes(dir.Combine($"out{i}")));
        }
        Assert.True(origin.BytesSent - originBefore <= good.Length / 10, $"the origin sent {origin.BytesSent - originBefore} bytes for five gets the swarm could serve");

        // With the origin down and no trusted publishers, no pointer is believed: exit 2, naming both ways out.
        await origin.DisposeAsync();
        await using var refused = await SwarmProcess.RunAsync(ProcessTimeout, "get", url, "-o", dir.Combine("refused"), "--data-dir", dir.Combine("r"),
            "--bootstrap", $"127.0.0.1:{honestPort}", "--listen", "127.0.0.1:0");
        Assert.True(refused.ExitCode == 2, refused.ToString());
        Assert.Contains("--digest", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("trusted-publishers", refused.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.Combine("refused")));

        // With the honest seed trusted (by its key file, or its id in the environment), the honest bytes, from the swarm.
        await using var trusted = await SwarmProcess.RunAsync(ProcessTimeout, "get", url, "-o", dir.Combine("trusted"), "--data-dir", dir.Combine("t"),
            "--bootstrap", $"127.0.0.1:{honestPort}", "--listen", "127.0.0.1:0", "--trusted-publishers", dir.Combine("honest", "node.key"));
        Assert.True(trusted.ExitCode == 0, trusted.ToString());
        Assert.Equal(good, File.ReadAllBytes(dir.Combine("trusted")));
        var honestId = TrustedPublishers.FromKeyFile(dir.Combine("honest", "node.key")).ToHex();
        await using var byEnv = SwarmProcess.StartWith(new Dictionary<string, string> { ["SWARM_TRUSTED_PUBLISHERS"] = honestId },
            "get", url, "-o", dir.Combine("env"), "--data-dir", dir.Combine("e"), "--bootstrap", $"127.0.0.1:{honestPort}", "--listen", "127.0.0.1:0");
        await byEnv.WaitForExitAsync(ProcessTimeout);
        Assert.True(byEnv.ExitCode == 0, byEnv.ToString());
        Assert.Equal(good, File.ReadAllBytes(dir.Combine("env")));
    }

    [Fact]
    public async Task AfterTheOriginReplacesTheFileFourGetsAtOnceAllWriteTheNewVersionFetchedOnce()
    {
        using var dir = new TempDirectory();
        var v1 = RandomBytes(4 * 1024 * 1024, 3);
        var v2 = RandomBytes(4 * 1024 * 1024 + 100, 4);
        await using var origin = new CountingOrigin();
        origin.Serve("/app.tar", v1);
        string url = origin.Url("/app.tar");
        int seedPort = FreePort.Get();
        await using var seed = await SeedAsync(dir, "seed", url, seedPort, null);

        origin.Serve("/app.tar", v2); // a new ETag and length
        long before = origin.BytesSent;
        var gets = Enumerable.Range(0, 4).Select(i => SwarmProcess.RunAsync(ProcessTimeout, "get", url, "-o", dir.Combine($"out{i}"), "--data-dir", dir.Combine($"g{i}"),
            "--bootstrap", $"127.0.0.1:{seedPort}", "--listen", "127.0.0.1:0")).ToList();
        var done = await Task.WhenAll(gets);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(done[i].ExitCode == 0, done[i].ToString());
            Assert.Equal(v2, File.ReadAllBytes(dir.Combine($"out{i}")));
        }
        long sent = origin.BytesSent - before;
        Assert.True(sent <= 1.2 * v2.Length, $"the origin sent {sent / (double)v2.Length:0.00}x the new version for four gets");
        Assert.Contains(done, g => g.Stderr.Contains("another version", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AForgedLeaseDelaysAColdStartByNoMoreThanTheLeasePlusFiveSeconds()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(2 * 1024 * 1024, 5);
        await using var origin = new CountingOrigin();
        origin.Serve("/cold.bin", content);
        origin.Serve("/baseline.bin", RandomBytes(2 * 1024 * 1024, 6));
        int nodePort = FreePort.Get();
        await using var node = SwarmProcess.Start("node", "--data-dir", dir.Combine("n"), "--listen", $"127.0.0.1:{nodePort}", "--metrics", "off", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("listening on", StringComparison.Ordinal) || node.HasExited, ProcessTimeout, "node start");
        Assert.False(node.HasExited, node.ToString());

        // The get's identity, made in advance, and an attacker key mined to have a lower id (the lowest lease wins).
        using (NodeKey.LoadOrCreate(dir.Combine("g"))) { }
        Hash256 getId = TrustedPublishers.FromKeyFile(dir.Combine("g", "node.key"));
        NodeKey forger = NodeKey.Generate();
        for (int i = 0; i < 1_000_000 && forger.NodeId >= getId; i++)
        {
            forger.Dispose();
            forger = NodeKey.Generate();
        }
        Assert.True(forger.NodeId < getId);

        // A baseline cold start of another URL through the same node, with no lease in the way. A get before it leaves
        // the DHT as the forged run will find it: with nodes that have gone away (every finished get), which slows lookups.
        await using (var warm = await SwarmProcess.RunAsync(ProcessTimeout, "get", origin.Url("/baseline.bin"), "-o", dir.Combine("warm"), "--data-dir", dir.Combine("w"),
            "--bootstrap", $"127.0.0.1:{nodePort}", "--listen", "127.0.0.1:0", "--tag", "warm-up"))
            Assert.True(warm.ExitCode == 0, warm.ToString());
        var clock = Stopwatch.StartNew();
        await using (var baseline = await SwarmProcess.RunAsync(ProcessTimeout, "get", origin.Url("/baseline.bin"), "-o", dir.Combine("base"), "--data-dir", dir.Combine("b"),
            "--bootstrap", $"127.0.0.1:{nodePort}", "--listen", "127.0.0.1:0"))
            Assert.True(baseline.ExitCode == 0, baseline.ToString());
        var baselineTime = clock.Elapsed;

        // The forged lease: 24 h, no ingest behind it, put on the node as any member could.
        await using var attacker = new TestDhtNode(DhtTestOptions.Fast, forger);
        Assert.True(await attacker.Node.BootstrapAsync([new IPEndPoint(IPAddress.Loopback, nodePort)], Ct) > 0);
        var taskKey = TaskKey.For(new Uri(origin.Url("/cold.bin")), null, []);
        var lease = SignedRecord.Create(forger, ColdStartLease.Key(taskKey), forger.NodeId.ToArray(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddHours(24));
        Assert.True(await attacker.Node.PutAsync(lease, Ct) >= 1);

        clock.Restart();
        await using var get = await SwarmProcess.RunAsync(ProcessTimeout, "get", origin.Url("/cold.bin"), "-o", dir.Combine("out"), "--data-dir", dir.Combine("g"),
            "--bootstrap", $"127.0.0.1:{nodePort}", "--listen", "127.0.0.1:0", "--stall-timeout", "60s");
        var took = clock.Elapsed;
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(content, File.ReadAllBytes(dir.Combine("out")));
        Assert.Contains("shows no ingest", get.Stderr, StringComparison.Ordinal);
        var bound = baselineTime + ColdStartLease.Lifetime + TimeSpan.FromSeconds(5);
        Assert.True(took <= bound, $"the cold start took {took.TotalSeconds:0.0} s with a forged lease (baseline {baselineTime.TotalSeconds:0.0} s, bound {bound.TotalSeconds:0.0} s)\n{get}");
        forger.Dispose();
    }
}
