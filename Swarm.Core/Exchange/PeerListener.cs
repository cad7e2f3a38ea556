using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// Accepts peer connections for an engine. Each waits in the <see cref="HandshakePool"/> through admission (preamble,
/// encrypted channel) and the handshake, then becomes a session of the content it names, within the node's connection
/// limit.
/// </summary>
internal sealed class PeerListener : IDisposable
{
    private readonly SwarmEngine _engine;
    private readonly Socket _socket;
    private readonly HandshakePool _handshakes;
    private readonly CancellationToken _stop;

    private PeerListener(SwarmEngine engine, Socket socket, CancellationToken stop)
    {
        _engine = engine;
        _socket = socket;
        _stop = stop;
        var options = engine.Options;
        _handshakes = new HandshakePool(options.MaxPendingHandshakes, options.MaxPendingPerAddress, options.LoopbackAsHosts);
        EndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    public IPEndPoint EndPoint { get; }
    /// <summary>Inbound connections still in admission or handshake.</summary>
    public int PendingHandshakes => _handshakes.Count;

    /// <summary>Binds <paramref name="endPoint"/> (port 0 picks a free one) and accepts until <paramref name="stop"/>.</summary>
    public static PeerListener Start(SwarmEngine engine, IPEndPoint endPoint, CancellationToken stop)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
            socket.Bind(endPoint);
            DeferAccept(socket);
            socket.Listen(512);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ListenException($"cannot listen on {endPoint}: {e.Message}", e);
        }
        var listener = new PeerListener(engine, socket, stop);
        engine.Track(listener.AcceptLoopAsync());
        return listener;
    }

    /// <summary>
    /// Linux's TCP_DEFER_ACCEPT: a connection reaches <see cref="Socket.AcceptAsync(CancellationToken)"/> only once its first
    /// bytes have arrived (a dialer speaks first: the preamble), or after about <see cref="DeferSeconds"/> s of silence.
    /// Silent connections wait in the kernel's SYN queue and take no place in the handshake pool meanwhile, so a flood
    /// of them arrives at the pool a few per second instead of as fast as one client can reconnect, and a real dialer's
    /// connection is accepted with its preamble already waiting — which the pool never pushes out.
    /// </summary>
    private static void DeferAccept(Socket socket)
    {
        if (!OperatingSystem.IsLinux()) return;
        const int IpProtoTcp = 6, TcpDeferAccept = 9;
        try { socket.SetRawSocketOption(IpProtoTcp, TcpDeferAccept, BitConverter.GetBytes(DeferSeconds)); }
        catch (SocketException) { } // an old or unusual kernel: the pool's eviction still protects it
    }

    /// <summary>
    /// How long the kernel holds a silent connection back at least; it rounds up to its SYN-ACK retransmissions (1, 2, 4 s
    /// apart), so about 7 s, within which a dialer has long sent its preamble. Then the pool's deadline applies.
    /// </summary>
    internal const int DeferSeconds = 5;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stop).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _engine.Logger.LogWarning("accept failed: {Error}", e.Message);
                continue;
            }
            var entry = _handshakes.TryEnter(client);
            if (entry == null)
            {
                // The handshake pool is full of connections that are all making progress: refuse at once (the peer tries
                // others) rather than queueing.
                _engine.Refusals.Record(RemoteAddress(client), RefusalReason.HandshakePoolFull, "too many connections in their handshake");
                client.Dispose();
                continue;
            }
            _engine.Track(HandleInboundAsync(client, entry));
        }
    }

    private static IPAddress RemoteAddress(Socket socket)
    {
        try { return HandshakePool.Normalize(((IPEndPoint)socket.RemoteEndPoint!).Address); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { return IPAddress.None; }
    }

    private async Task HandleInboundAsync(Socket client, HandshakePool.Entry entry)
    {
        var engine = _engine;
        var options = engine.Options;
        var source = RemoteAddress(client);
        FrameConnection? connection = null;
        PeerSession? session = null;
        try
        {
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop, entry.Evicted.Token))
            {
                timeout.CancelAfter(options.HandshakeTimeout);
                try
                {
                    connection = await AdmitAsync(client, entry, timeout.Token).ConfigureAwait(false);
                    var (peer, content) = await Handshake.AcceptAsync(connection, engine.Key, id => engine.Find(id) != null, EndPoint.Port, timeout.Token).ConfigureAwait(false);
                    if (engine.Bans.IsBanned(peer.NodeId))
                    {
                        engine.Refusals.Record(source, RefusalReason.Banned);
                        return;
                    }
                    var swarm = engine.Find(content) ?? throw new WireProtocolException($"{content} is no longer served");
                    session = new PeerSession(swarm, connection, peer, outbound: false);
                }
                catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
                {
                    engine.Refusals.Record(source, entry.Evicted.IsCancellationRequested ? RefusalReason.HandshakeEvicted : RefusalReason.Timeout,
                        entry.Evicted.IsCancellationRequested ? null : $"{source} did not finish its handshake within {options.HandshakeTimeout.TotalSeconds:0.#} s");
                    return;
                }
                catch (AdmissionException e)
                {
                    engine.Refusals.Record(source, Refusals.From(e.Failure), e.Message, log: e.Failure != AdmissionFailure.Closed);
                    return;
                }
                catch (WireProtocolException e)
                {
                    engine.Refusals.Record(source, RefusalReason.Handshake, e.Message, log: e is not PeerClosedException);
                    return;
                }
                finally
                {
                    _handshakes.Leave(entry);
                }
            }
            if (!engine.TryAdmitSession())
            {
                engine.Refusals.Record(source, RefusalReason.PeerLimit, $"this node's peer limit ({options.MaxConnections}) is reached");
                return;
            }
            try
            {
                connection = null; // the session owns it now
                await session.RunAsync(_stop).ConfigureAwait(false);
            }
            finally
            {
                engine.LeaveSession();
            }
        }
        catch (Exception e) when (e is WireProtocolException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            engine.Logger.LogDebug("inbound connection from {Remote} dropped: {Error}", source, e.Message);
        }
        finally
        {
            if (connection != null) await connection.DisposeAsync().ConfigureAwait(false);
            else if (session == null) client.Dispose();
        }
    }

    /// <summary>Admission of an accepted socket: the preamble within its own short deadline, then the encrypted channel (bounded by the caller's).</summary>
    private async Task<FrameConnection> AdmitAsync(Socket client, HandshakePool.Entry entry, CancellationToken cancellationToken)
    {
        using var preamble = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        preamble.CancelAfter(_engine.Options.PreambleTimeout);
        // The preamble's deadline applies until it is in; after that only the handshake's.
        return await FrameConnection.AcceptAsync(client, _engine.Security, preamble.Token, onPreamble: () =>
        {
            entry.Spoke = true;
            preamble.CancelAfter(Timeout.InfiniteTimeSpan);
        }).ConfigureAwait(false);
    }

    public void Dispose() => _socket.Dispose();
}
