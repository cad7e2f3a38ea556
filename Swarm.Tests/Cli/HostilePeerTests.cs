using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Swarm.Core.Identity;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// One client trying to wear a node down over real sockets, and a real <c>swarm get</c> that must still succeed:
/// idle connections, admitted sessions that only send keep-alives, most of a large frame the node did not ask for, and a
/// flood of refused connections that must not flood the log. The per-address limits are on (no lab-loopback). They run
/// alone: the 5 s bounds and the RSS measure the node, not other tests on the same two cores.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public sealed class HostilePeerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static readonly Dictionary<string, string> Production = new() { ["SWARM_LAB_LOOPBACK"] = "off" };
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A real get by id straight from the node at <paramref name="peer"/>; returns the process and its wall time.</summary>
    private static async Task<(SwarmProcess Get, TimeSpan Took)> GetAsync(TempDirectory dir, string id, IPEndPoint peer, string name)
    {
        var clock = Stopwatch.StartNew();
        var get = SwarmProcess.StartWith(Production, "get", id, "--peer", peer.ToString(), "-o", dir.Combine(name), "--data-dir", dir.Combine(name + "-data"), "-v");
        await get.WaitForExitAsync(Timeout);
        return (get, clock.Elapsed);
    }

    /// <summary>
    /// Connects, says nothing, and connects again when the node closes the connection. It waits 20 ms before it does, as a
    /// round trip would make a client elsewhere: on loopback 256 of these would otherwise spin a core of the test machine,
    /// and the get under test (a process on the same two cores) would measure the machine, not the node.
    /// </summary>
    private static async Task IdleLoopAsync(IPEndPoint node, CancellationToken stop)
    {
        var buffer = new byte[1];
        while (!stop.IsCancellationRequested)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(node, stop);
                while (await socket.ReceiveAsync(buffer, SocketFlags.None, stop) > 0) { }
                await Task.Delay(20, stop);
            }
            catch (OperationCanceledException) { return; }
            catch (SocketException) { await Task.Delay(20, CancellationToken.None); }
        }
    }

    [Fact]
    public async Task TwoHundredFiftySixIdleConnectionsFromOneAddressDoNotKeepARealGetOut()
    {
        using var dir = new TempDirectory();
        await using var seed = await SeededNode.StartAsync(labLoopback: false);
        var engine = seed.Node.Engine;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var attackers = Enumerable.Range(0, 256).Select(_ => Task.Run(() => IdleLoopAsync(seed.EndPoint, stop.Token), Ct)).ToArray();
        // The attack is on: the kernel holds the silent connections back (TCP_DEFER_ACCEPT) and then hands them over in a
        // wave; the handshake pool's share for 127.0.0.1 fills and pushes the rest out. The get runs through that wave.
        await Poll.UntilAsync(() => engine.Refusals.Total >= 200, Timeout, "the idle connections to fill the handshake pool");
        int pending = engine.PendingHandshakes;
        Assert.True(pending >= 1 && pending <= new Swarm.Core.Exchange.EngineOptions().MaxPendingPerAddress + 1, $"{pending} pending; refused "
            + string.Join(", ", engine.Refusals.Totals.Where(t => t.Count > 0).Select(t => $"{t.Count} {t.Reason}")));

        var (get, took) = await GetAsync(dir, seed.Id.ToUri(), seed.EndPoint, "out.bin");
        await using (get)
        {
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.Equal(seed.Original, File.ReadAllBytes(dir.Combine("out.bin")));
            Assert.True(took < TimeSpan.FromSeconds(5), $"the get took {took.TotalSeconds:0.0} s: {get}; the node refused "
                + string.Join(", ", engine.Refusals.Totals.Select(t => $"{t.Count} {t.Reason}")));
        }
        await stop.CancelAsync();
        await Task.WhenAll(attackers).WaitAsync(Timeout, Ct);
    }

    [Fact]
    public async Task SilentConnectionsWaitOutsideTheHandshakePoolWhileOneThatSpeaksIsTakenAtOnce()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("TCP_DEFER_ACCEPT is Linux's");
        await using var seed = await SeededNode.StartAsync(labLoopback: false);
        var engine = seed.Node.Engine;
        var silent = new List<Socket>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                silent.Add(socket);
                await socket.ConnectAsync(seed.EndPoint, Ct); // complete on this side: the kernel answered the SYN
            }
            // One that speaks (the preamble, the handshake) is accepted and admitted at once, beside the silent ones.
            using (var key = NodeKey.Generate())
            await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
                await peer.HandshakeAsync(key, seed.Id);
            // The kernel holds the silent ones back for DeferSeconds or more: none of them is in the pool yet (the speaker's
            // own entry may still be leaving it). Taken at once, they would fill 127.0.0.1's share (8) and push each other out.
            Assert.True(engine.PendingHandshakes <= 1, $"{engine.PendingHandshakes} connections in the handshake pool");
            Assert.Equal(0, engine.Refusals.Total);
            // Later they come through to the pool (and its eviction and deadline), not never.
            await Poll.UntilAsync(() => engine.PendingHandshakes + engine.Refusals.Total > 0, Timeout, "the silent connections to reach the handshake pool");
        }
        finally
        {
            foreach (var s in silent) s.Dispose();
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ThirtyIdleAdmittedSessionsDoNotHoldAContentsSlots(bool oneAddress)
    {
        using var dir = new TempDirectory();
        await using var seed = await SeededNode.StartAsync(labLoopback: false);
        var swarm = seed.Node.Engine.Find(seed.Id)!;
        var peers = new List<RawPeer>();
        var keys = new List<NodeKey>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        try
        {
            for (int i = 0; i < 30; i++)
            {
                var key = NodeKey.Generate();
                keys.Add(key);
                var from = oneAddress ? IPAddress.Loopback : IPAddress.Parse($"127.0.0.{10 + i}");
                var peer = await RawPeer.ConnectAsync(seed.EndPoint, from: from);
                peers.Add(peer);
                try { await peer.HandshakeAsync(key, seed.Id); } catch (Exception e) when (e is InvalidOperationException or IOException or SocketException) { }
            }
            // They only send keep-alives, and hold every slot they could get.
            var keepAlive = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    foreach (var p in peers) await p.SendIgnoringResetAsync(new byte[4]);
                    try { await Task.Delay(500, stop.Token); } catch (OperationCanceledException) { return; }
                }
            }, Ct);
            int held = oneAddress ? new Swarm.Core.Exchange.EngineOptions().MaxPeersPerAddress : new Swarm.Core.Exchange.EngineOptions().MaxPeersPerContent;
            await Poll.UntilAsync(() => swarm.PeerCount == held && swarm.Sessions.All(s => s.IdleFor > 2_500), Timeout,
                $"{held} idle sessions to hold the content's slots");

            var (get, took) = await GetAsync(dir, seed.Id.ToUri(), seed.EndPoint, "out.bin");
            await using (get)
            {
                Assert.True(get.ExitCode == 0, get.ToString());
                Assert.Equal(seed.Original, File.ReadAllBytes(dir.Combine("out.bin")));
                Assert.True(took < TimeSpan.FromSeconds(5), $"the get took {took.TotalSeconds:0.0} s: {get}");
            }
            Assert.True(seed.Node.Engine.Refusals.Totals.Single(t => t.Reason == Swarm.Core.Exchange.RefusalReason.PeersPerAddress).Count > 0 || !oneAddress);
            await stop.CancelAsync();
            await keepAlive.WaitAsync(Timeout, Ct);
        }
        finally
        {
            foreach (var p in peers) await p.DisposeAsync();
            foreach (var k in keys) k.Dispose();
        }
    }

    private static long ResidentBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"no VmRSS for process {pid}");
    }

    private static async Task<(SwarmProcess Seed, string Id, IPEndPoint EndPoint)> StartSeedAsync(TempDirectory dir, long size)
    {
        string file = dir.WriteRandomFile("served.bin", size, seed: 5);
        var endPoint = new IPEndPoint(IPAddress.Loopback, FreePort.Get());
        var seed = SwarmProcess.StartWith(Production, "seed", file, "--data-dir", dir.Combine("seed"), "--listen", endPoint.ToString());
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), Timeout);
        return (seed, id, endPoint);
    }

    [Fact]
    public async Task OneHundredFiftySessionsSendingMostOfAnUnexpectedEightMiBFrameDoNotPinMemory()
    {
        using var dir = new TempDirectory();
        var (seed, id, endPoint) = await StartSeedAsync(dir, 4 * 1024 * 1024);
        await using var _ = seed;
        var content = Swarm.Core.Content.ContentId.Parse(id);
        // Warm up what every session uses (TLS, the handshake), then take the baseline.
        for (int i = 0; i < 5; i++)
        {
            using var key = NodeKey.Generate();
            await using var peer = await RawPeer.ConnectAsync(endPoint, from: IPAddress.Parse("127.0.0.200"));
            await peer.HandshakeAsync(key, content);
        }
        await Task.Delay(200, Ct);
        long before = ResidentBytes(seed.Id);

        const int length = WireLimits.MaxManifestLength; // a Hashes frame of 8 MiB: the node has the manifest and asked for none
        var frame = new byte[4 + length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)length);
        frame[4] = (byte)MessageKind.Hashes;
        var open = new List<RawPeer>();
        var keys = new List<NodeKey>();
        try
        {
            for (int batch = 0; batch < 150; batch += 25)
            {
                var tasks = Enumerable.Range(batch, 25).Select(async i =>
                {
                    var key = NodeKey.Generate();
                    var peer = await RawPeer.ConnectAsync(endPoint, from: IPAddress.Parse($"127.0.1.{1 + i}"));
                    lock (open) { open.Add(peer); keys.Add(key); }
                    try
                    {
                        await peer.HandshakeAsync(key, content);
                        await peer.SendIgnoringResetAsync(frame.AsMemory(0, frame.Length - 1)); // all but the last byte, then hold the connection
                    }
                    catch (Exception e) when (e is InvalidOperationException or IOException or SocketException) { }
                });
                await Task.WhenAll(tasks).WaitAsync(Timeout, Ct);
            }
            await Task.Delay(500, Ct);
            long after = ResidentBytes(seed.Id);
            Assert.True(after - before <= 64L * 1024 * 1024, $"RSS grew by {(after - before) / 1048576.0:0.0} MiB (from {before / 1048576.0:0} MiB)");
            Assert.False(seed.HasExited, seed.ToString());
        }
        finally
        {
            foreach (var p in open) await p.DisposeAsync();
            foreach (var k in keys) k.Dispose();
        }
        // And it still serves.
        var (get, _) = await GetAsync(dir, id, endPoint, "out.bin");
        await using (get) Assert.True(get.ExitCode == 0, get.ToString());
    }

    [Fact]
    public async Task TenThousandRefusedConnectionsLogAtMostOneLinePerSecond()
    {
        using var dir = new TempDirectory();
        var (seed, _, endPoint) = await StartSeedAsync(dir, 64 * 1024);
        await using var __ = seed;
        int linesBefore = seed.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        var garbage = "GET / HTTP/1.1\r\nHost: swarm\r\nX-Pad: 0123456789\r\n\r\n"u8.ToArray(); // not a Swarm preamble
        var clock = Stopwatch.StartNew();
        int next = 0;
        var workers = Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            var buffer = new byte[256];
            while (Interlocked.Increment(ref next) <= 10_000)
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(endPoint, Ct);
                    await socket.SendAsync(garbage, SocketFlags.None, Ct);
                    while (await socket.ReceiveAsync(buffer, SocketFlags.None, Ct) > 0) { }
                }
                catch (SocketException) { }
            }
        }, Ct)).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(2), Ct);
        // The summary of the last interval comes within its interval (5 s).
        await Poll.UntilAsync(() => seed.Stderr.Contains("refused", StringComparison.Ordinal), TimeSpan.FromSeconds(15), "a refusal summary");
        await Task.Delay(Swarm.Core.Exchange.Refusals.Interval + TimeSpan.FromSeconds(1), Ct);
        double seconds = clock.Elapsed.TotalSeconds;
        var lines = seed.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(linesBefore).ToList();
        Assert.True(lines.Count <= Math.Ceiling(seconds), $"{lines.Count} log lines in {seconds:0.0} s:\n{string.Join('\n', lines.Take(20))}");
        Assert.Contains(lines, l => l.Contains("(not swarm)", StringComparison.Ordinal) && l.Contains("127.0.0.1", StringComparison.Ordinal));
        Assert.False(seed.HasExited, seed.ToString());
    }
}
