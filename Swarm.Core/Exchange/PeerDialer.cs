using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// Dials the peers of one download, one loop per address: connect, admission, handshake, then a session until it ends;
/// again with back-off while the download runs, until the address fails <see cref="EngineOptions.DialAttempts"/> times
/// without giving us a byte, is banned, or belongs to another swarm (key, encryption). What each address last said is
/// kept for the download's error message.
/// </summary>
internal sealed class PeerDialer(SwarmEngine engine, ContentSwarm swarm, CancellationToken cancellationToken)
{
    private readonly Dictionary<IPEndPoint, Task> _dialers = [];

    /// <summary>Why each address dialled last ended or failed.</summary>
    public ConcurrentDictionary<IPEndPoint, string> Errors { get; } = new();
    /// <summary>Whether every dial loop has ended.</summary>
    public bool AllEnded => _dialers.Values.All(d => d.IsCompleted);

    /// <summary>Starts a dial loop for the address unless one runs, it is banned, or the content's peer limit of loops runs.</summary>
    public void Dial(IPEndPoint endPoint)
    {
        if (_dialers.TryGetValue(endPoint, out var running) && !running.IsCompleted) return;
        if (engine.Bans.IsBanned(endPoint) || _dialers.Count(d => !d.Value.IsCompleted) >= engine.Options.MaxPeersPerContent) return;
        _dialers[endPoint] = Task.Run(() => DialLoopAsync(endPoint));
    }

    /// <summary>Waits for every dial loop (the caller has cancelled them).</summary>
    public async Task WaitAsync()
    {
        try { await Task.WhenAll(_dialers.Values).ConfigureAwait(false); } catch (OperationCanceledException) { }
    }

    private async Task DialLoopAsync(IPEndPoint endPoint)
    {
        var options = engine.Options;
        int failures = 0;
        while (!cancellationToken.IsCancellationRequested && !swarm.Completion.IsCompleted)
        {
            if (engine.Bans.IsBanned(endPoint))
            {
                Errors[endPoint] = "banned for sending bad data";
                return;
            }
            if (engine.Connections >= options.MaxConnections || swarm.IsConnectedTo(endPoint))
            {
                // At the limit, or the peer already connected to us: a second connection would be dropped as a duplicate
                // (and could take the working one with it). Look again later.
                await Task.Delay(1000, cancellationToken).ConfigureAwait(false);
                continue;
            }
            FrameConnection? connection = null;
            bool counted = false;
            try
            {
                using var hs = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                hs.CancelAfter(options.ConnectTimeout + options.HandshakeTimeout); // the connect has its own bound inside
                connection = await FrameConnection.ConnectAsync(endPoint, options.ConnectTimeout, hs.Token, engine.Security).ConfigureAwait(false);
                var peer = await Handshake.InitiateAsync(connection, engine.Key, swarm.Id, engine.ListenEndPoint?.Port ?? 0, hs.Token).ConfigureAwait(false);
                if (engine.Bans.IsBanned(peer.NodeId)) throw new WireProtocolException("peer is banned");
                engine.EnterSession();
                counted = true;
                var session = new PeerSession(swarm, connection, peer, outbound: true);
                connection = null; // the session owns it now
                long before = session.BytesDownloaded;
                await session.RunAsync(cancellationToken).ConfigureAwait(false);
                Errors[endPoint] = session.CloseReason ?? "disconnected";
                if (session.BytesDownloaded > before) failures = 0; // it was useful: reconnect freely
                else failures++;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or IOException or TimeoutException or WireProtocolException or OperationCanceledException)
            {
                Errors[endPoint] = e is OperationCanceledException ? "handshake timed out" : e.Message;
                failures++;
                // A peer of another swarm (key, encryption) will not change its mind: do not keep knocking.
                if (e is AdmissionException { Failure: AdmissionFailure.SwarmKey or AdmissionFailure.Encryption }) return;
            }
            finally
            {
                if (counted) engine.LeaveSession();
                if (connection != null) await connection.DisposeAsync().ConfigureAwait(false);
            }
            if (failures >= options.DialAttempts) return;
            var backOff = TimeSpan.FromMilliseconds(500 * (1 << Math.Min(failures, 5)));
            engine.Logger.LogDebug("peer {Peer}: {Error}; dialling again in {Seconds:0.#} s", endPoint, Errors.GetValueOrDefault(endPoint), backOff.TotalSeconds);
            try
            {
                await Task.Delay(backOff, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
