using System.Net;
using System.Net.Sockets;

namespace Swarm.Core.Dht;

/// <summary>
/// Tells a dead address from a slow one: an empty datagram sent from a connected UDP socket comes back as "connection
/// refused" (ICMP port unreachable) when nothing listens there. A DHT node ignores empty datagrams, so a live node gives
/// no answer and the probe simply times out; only refusals count.
/// </summary>
public static class DhtProbe
{
    /// <summary>True when every address refused within <paramref name="timeout"/>; false when any did not (or none given).</summary>
    public static async Task<bool> AllRefusedAsync(IReadOnlyCollection<IPEndPoint> addresses, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (addresses.Count == 0) return false;
        using var window = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        window.CancelAfter(timeout);
        var probes = addresses.Select(a => RefusedAsync(a, window.Token)).ToArray();
        var results = await Task.WhenAll(probes).ConfigureAwait(false);
        return results.All(r => r);
    }

    private static async Task<bool> RefusedAsync(IPEndPoint address, CancellationToken cancellationToken)
    {
        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            await socket.ConnectAsync(address, cancellationToken).ConfigureAwait(false);
            var buffer = new byte[16];
            // Send twice a little apart: the first ICMP answer may be lost or rate-limited.
            for (int attempt = 0; attempt < 3; attempt++)
            {
                await socket.SendAsync(ReadOnlyMemory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(TimeSpan.FromMilliseconds(50 * (attempt + 1)));
                try
                {
                    await socket.ReceiveAsync(buffer, SocketFlags.None, wait.Token).ConfigureAwait(false);
                    return false; // something answers there
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested) { }
            }
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset
                                            or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
        {
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
