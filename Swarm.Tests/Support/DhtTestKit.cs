using System.Net;
using System.Net.Sockets;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;

namespace Swarm.Tests.Support;

/// <summary>A DHT node on 127.0.0.1 (or another loopback address, 127.0.0.0/8 all reach lo) with its own key, disposed together.</summary>
internal sealed class TestDhtNode : IAsyncDisposable
{
    public TestDhtNode(DhtOptions options, NodeKey? key = null, int port = 0, IPAddress? address = null)
    {
        Key = key ?? NodeKey.Generate();
        Node = new DhtNode(Key, options);
        Node.Start(new IPEndPoint(address ?? IPAddress.Loopback, port));
    }

    public NodeKey Key { get; }
    public DhtNode Node { get; }
    public IPEndPoint EndPoint => Node.LocalEndPoint;
    public Hash256 Id => Node.NodeId;

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync();
        Key.Dispose();
    }
}

/// <summary>
/// A hand-driven UDP peer: sends any bytes (also garbage) and reads datagrams with a timeout, so a test can talk to a node
/// exactly as an attacker could.
/// </summary>
internal sealed class RawDhtPeer : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly Queue<(DhtHeader Header, IDhtBody Body, byte[] Bytes, IPEndPoint From)> _inbox = new();
    private readonly DatagramAuthenticator? _authenticator;

    /// <param name="bind">The loopback address to send from (127.0.0.1 by default).</param>
    /// <param name="authenticator">Seals what the peer sends and opens what it receives, as a member holding the swarm key would.</param>
    public RawDhtPeer(IPAddress? bind = null, DatagramAuthenticator? authenticator = null)
    {
        _authenticator = authenticator;
        _socket.Bind(new IPEndPoint(bind ?? IPAddress.Loopback, 0));
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public Hash256 Id { get; } = Hash256.Random();
    public IPEndPoint EndPoint { get; }

    public void SendRaw(IPEndPoint to, ReadOnlySpan<byte> datagram) => _socket.SendTo(datagram, SocketFlags.None, to);

    public byte[] Encode(IDhtBody body, ulong txid) => DhtCodec.Encode(new DhtHeader(body.Kind, txid, Id), body, _authenticator);

    public void Send(IPEndPoint to, IDhtBody body, ulong txid = 1) => SendRaw(to, Encode(body, txid));

    /// <summary>The next datagram, decoded; null if none arrives within <paramref name="timeout"/>.</summary>
    public async Task<(DhtHeader Header, IDhtBody Body, byte[] Bytes, IPEndPoint From)?> ReceiveAsync(TimeSpan timeout)
    {
        if (_inbox.TryDequeue(out var queued)) return queued;
        return await ReceiveFromSocketAsync(timeout);
    }

    private async Task<(DhtHeader Header, IDhtBody Body, byte[] Bytes, IPEndPoint From)?> ReceiveFromSocketAsync(TimeSpan timeout)
    {
        var buffer = new byte[2048];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            while (true)
            {
                var r = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), cts.Token);
                var bytes = buffer[..r.ReceivedBytes];
                if (DhtCodec.TryDecode(bytes, _authenticator, out var header, out var body) == DecodeResult.Ok)
                    return (header, body!, bytes, (IPEndPoint)r.RemoteEndPoint);
            }
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Sends a request and waits for the answer with the same transaction id; other datagrams stay queued for <see cref="ReceiveAsync"/>.</summary>
    public Task<IDhtBody?> RequestAsync(IPEndPoint to, IDhtBody body, TimeSpan timeout)
    {
        ulong txid = (ulong)Random.Shared.NextInt64();
        return RequestRawAsync(to, Encode(body, txid), txid, timeout);
    }

    /// <summary>As <see cref="RequestAsync"/> for a datagram made by the caller (a replay, an old timestamp) whose transaction id is <paramref name="txid"/>.</summary>
    public async Task<IDhtBody?> RequestRawAsync(IPEndPoint to, byte[] datagram, ulong txid, TimeSpan timeout)
    {
        SendRaw(to, datagram);
        var others = new List<(DhtHeader Header, IDhtBody Body, byte[] Bytes, IPEndPoint From)>();
        var deadline = DateTime.UtcNow + timeout;
        IDhtBody? answer = null;
        while (answer == null && DateTime.UtcNow < deadline)
        {
            var r = await ReceiveFromSocketAsync(deadline - DateTime.UtcNow);
            if (r == null) break;
            if (r.Value.Header.TransactionId == txid) answer = r.Value.Body;
            else others.Add(r.Value);
        }
        foreach (var o in others) _inbox.Enqueue(o);
        return answer;
    }

    public void Dispose() => _socket.Dispose();
}

internal static class DhtTestOptions
{
    /// <summary>
    /// Short timeouts so failures show quickly; everything else as in production, per-address limits included: every
    /// socket on 127.0.0.1 is the same host. For one node and a few peers, or peers on distinct loopback addresses.
    /// </summary>
    public static DhtOptions Fast => new()
    {
        RpcTimeout = TimeSpan.FromMilliseconds(400),
        LookupWidenAfter = TimeSpan.FromMilliseconds(200),
        LookupTimeout = TimeSpan.FromSeconds(3),
    };

    /// <summary>
    /// <see cref="Fast"/> for a swarm of nodes sharing 127.0.0.1: each address:port counts as its own host
    /// (<see cref="DhtOptions.LoopbackAsHosts"/>), or the nodes would share one rate limit and two places per bucket.
    /// </summary>
    public static DhtOptions LoopbackSwarm => Fast with { LoopbackAsHosts = true };

    /// <summary>A random 32-byte swarm secret, as the node generates one.</summary>
    public static byte[] NewSwarmKey() => System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
}

internal static class DhtPoll
{
    /// <summary>Like <see cref="Support.Poll.UntilAsync"/> for a condition that needs the network (awaited, never blocked on).</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }
}
