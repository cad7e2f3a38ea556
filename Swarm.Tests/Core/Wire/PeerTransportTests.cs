using System.Net;
using System.Net.Sockets;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Wire;

/// <summary>Admission (swarm key), encryption (a channel pinned to node ids) and what an eavesdropper on the wire sees.</summary>
public sealed class PeerTransportTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A TCP relay that forwards both ways and keeps every byte it forwarded: a capture of the traffic.</summary>
    private sealed class CapturingRelay : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        // One capture per direction: the two pumps interleave their chunks, so one shared stream could split a marker that
        // spans two reads of one direction with bytes of the other.
        private readonly List<MemoryStream> _captured = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _pumps = [];
        private readonly Task _accept;

        public CapturingRelay(IPEndPoint target)
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(16);
            _accept = AcceptAsync(target);
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

        /// <summary>What went each way on each relayed connection.</summary>
        public List<byte[]> Captured { get { lock (_captured) return [.. _captured.Select(c => c.ToArray())]; } }

        private async Task AcceptAsync(IPEndPoint target)
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptAsync(_stop.Token);
                    var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await server.ConnectAsync(target, _stop.Token);
                    lock (_pumps)
                    {
                        _pumps.Add(PumpAsync(client, server));
                        _pumps.Add(PumpAsync(server, client));
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
        }

        private async Task PumpAsync(Socket from, Socket to)
        {
            var buffer = new byte[64 * 1024];
            var captured = new MemoryStream();
            lock (_captured) _captured.Add(captured);
            try
            {
                while (true)
                {
                    int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                    if (n == 0) break;
                    lock (_captured) captured.Write(buffer, 0, n);
                    await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
            finally
            {
                try { to.Shutdown(SocketShutdown.Send); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Dispose();
            await _accept;
            Task[] pumps;
            lock (_pumps) pumps = [.. _pumps];
            await Task.WhenAll(pumps);
            _stop.Dispose();
        }
    }

    private static bool Contains(List<byte[]> haystacks, byte[] needle) => haystacks.Any(h => h.AsSpan().IndexOf(needle) >= 0);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ACaptureOfAnEncryptedTransferDoesNotHoldTheContentAndAPlaintextOneDoes(bool encrypt)
    {
        using var dir = new TempDirectory();
        var marker = new byte[64 * 1024];
        new Random(41).NextBytes(marker);
        var payload = new byte[3 * 1024 * 1024];
        new Random(42).NextBytes(payload);
        marker.CopyTo(payload, 3 * 128 * 1024 + 1000); // inside one 128 KiB block, so one frame carries it whole
        string source = dir.Combine("marked.bin");
        File.WriteAllBytes(source, payload);

        var options = new EngineOptions { Encrypt = encrypt, StallTimeout = TimeSpan.FromSeconds(15) };
        await using var seed = new TestNode(options);
        var content = await seed.SeedAsync(source);
        await using var relay = new CapturingRelay(seed.EndPoint);
        await using var leech = new TestNode(options, listen: false);
        var got = await leech.Engine.DownloadAsync(content.Id, [relay.EndPoint], null, Ct).WaitAsync(Timeout, Ct);
        Assert.True(got.IsComplete);
        Assert.Equal(payload, File.ReadAllBytes(got.DataPath));
        await leech.DisposeAsync();

        var captured = relay.Captured;
        long carried = captured.Sum(c => (long)c.Length);
        Assert.True(carried >= payload.Length, $"the relay carried only {carried} bytes");
        Assert.Equal(!encrypt, Contains(captured, marker));
        // Nor does an encrypted capture hold the content id in the clear (the handshake's Hello carries it inside the encrypted channel).
        Assert.Equal(!encrypt, Contains(captured, content.Id.Value.ToArray()));
    }

    public static TheoryData<string, bool, string, bool, string> Mismatches => new()
    {
        { "k1", true, "", true, "has no swarm key" },
        { "", true, "k1", true, "belongs to a private swarm" },
        { "k1", true, "k2", true, "another swarm key" },
        { "", true, "", false, "sends peer traffic unencrypted" },
        { "", false, "", true, "has encryption turned off" },
    };

    [Theory]
    [MemberData(nameof(Mismatches))]
    public async Task PeersOfAnotherSwarmAreRefusedAndTheDialerSaysWhy(string dialerKey, bool dialerEncrypts, string acceptorKey, bool acceptorEncrypts, string words)
    {
        var keys = new Dictionary<string, SwarmKey> { ["k1"] = SwarmKey.Generate(), ["k2"] = SwarmKey.Generate() };
        await using var seed = await SeededNode.StartAsync(options: new EngineOptions
        {
            SwarmKey = acceptorKey.Length > 0 ? keys[acceptorKey] : null, Encrypt = acceptorEncrypts,
        });
        using var dialer = NodeKey.Generate();
        using var security = new TransportSecurity(dialer, dialerKey.Length > 0 ? keys[dialerKey] : null, dialerEncrypts);
        var e = await Assert.ThrowsAsync<AdmissionException>(() => FrameConnection.ConnectAsync(seed.EndPoint, Timeout, Ct, security).WaitAsync(Timeout, Ct));
        Assert.Contains(words, e.Message, StringComparison.Ordinal);
        Assert.Contains(seed.EndPoint.ToString(), e.Message, StringComparison.Ordinal);
        var reason = e.Failure == AdmissionFailure.Encryption ? RefusalReason.Encryption : RefusalReason.SwarmKey;
        await Poll.UntilAsync(() => seed.Node.Engine.Refusals.Totals.Single(t => t.Reason == reason).Count == 1, Timeout, "the refusal to be counted");
        Assert.Equal(0, seed.Node.Engine.Find(seed.Id)!.PeerCount);
    }

    [Fact]
    public async Task MembersWithTheSameKeyTransferAndAnOutsiderSeesOnlyThePreamble()
    {
        var key = SwarmKey.Generate();
        var options = new EngineOptions { SwarmKey = key };
        await using var seed = await SeededNode.StartAsync(options: options);
        await using (var leech = new TestNode(options, listen: false))
        {
            var got = await leech.Engine.DownloadAsync(seed.Id, [seed.EndPoint], null, Ct).WaitAsync(Timeout, Ct);
            Assert.Equal(seed.Original, File.ReadAllBytes(got.DataPath));
        }

        // An outsider claiming to hold a key (the keyed flag) but unable to prove it: it reads the node's 70-byte preamble
        // (magic, flags, nonce, the node's proof) and nothing more; the node closes after its wrong proof.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(seed.EndPoint, Ct);
        byte[] preamble = [.. "SWRM"u8, 1, 3, .. new byte[32]];
        await socket.SendAsync(preamble, SocketFlags.None, Ct);
        await socket.SendAsync(new byte[32], SocketFlags.None, Ct); // a made-up proof
        var received = new MemoryStream();
        var buffer = new byte[4096];
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            cts.CancelAfter(Timeout);
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token)) > 0) received.Write(buffer, 0, n);
        }
        Assert.Equal(70, received.Length);
        Assert.False(Contains([received.ToArray()], seed.Id.Value.ToArray()));
        await Poll.UntilAsync(() => seed.Node.Engine.Refusals.Totals.Single(t => t.Reason == RefusalReason.SwarmKey).Count == 1, Timeout, "the refusal to be counted");
    }

    [Fact]
    public async Task AChannelSignedByAnotherKeyThanTheHellosIsRefused()
    {
        await using var seed = await SeededNode.StartAsync();
        using var tlsKey = NodeKey.Generate();
        using var helloKey = NodeKey.Generate();
        await using var peer = await RawPeer.ConnectAsync(seed.EndPoint);
        await peer.AdmitAsync(tlsKey); // the encrypted channel signed with one key ...
        await Assert.ThrowsAnyAsync<Exception>(() => peer.HandshakeAsync(helloKey, seed.Id)); // ... a Hello with another: no Hello back
        await Poll.UntilAsync(() => seed.Node.Engine.Refusals.Totals.Single(t => t.Reason == RefusalReason.Handshake).Count == 1, Timeout, "the refusal to be counted");
        Assert.Equal(0, seed.Node.Engine.Find(seed.Id)!.PeerCount);
    }

    [Fact]
    public async Task TheAdmissionAndBindingDependOnTheKeyAndTheNonces()
    {
        // Derived keys differ by purpose and by secret; the fingerprint names a key without its bytes.
        var a = SwarmKey.Generate();
        var b = SwarmKey.FromBytes(new byte[32]);
        Assert.NotEqual(a.Derive("swarm/tcp-admission/v1"), a.Derive("swarm/dht"));
        Assert.NotEqual(a.Derive("swarm/dht"), b.Derive("swarm/dht"));
        Assert.Equal(b.Fingerprint, SwarmKey.Decode(b.Encode()).Fingerprint);
        Assert.DoesNotContain(Convert.ToHexStringLower(new byte[32]), b.Fingerprint, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => SwarmKey.Decode("swarm-key/v1\nnot hex"));
        Assert.Throws<InvalidDataException>(() => SwarmKey.Decode("-----BEGIN PRIVATE KEY-----\n" + new string('a', 64)));
        await Task.CompletedTask;
    }
}
