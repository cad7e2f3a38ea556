using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>An answer to one of our requests: who sent it (id and address) and what it says.</summary>
internal sealed record DhtReply(Hash256 Sender, IPEndPoint From, IDhtBody Body);

/// <summary>Counters of one node; read without locks, so a snapshot may be a few increments apart.</summary>
internal sealed class DhtCounters
{
    public long DatagramsReceived;
    public long DroppedOversized;
    public long DroppedMalformed;
    public long DroppedBadKey;
    public long DroppedReplayed;
    public long DroppedRateLimited;
    public long DroppedUnsolicited;
    public long RequestsAnswered;
    public long RpcsSent;
    public long RpcsAnswered;
    public long RpcsTimedOut;
    public long SendErrors;
    public long HandlerErrors;
    public long Lookups;
    public long LookupsTimedOut;

    public static void Add(ref long counter) => Interlocked.Increment(ref counter);
    public static long Read(ref long counter) => Interlocked.Read(ref counter);
}

/// <summary>
/// The UDP side of a node: one socket, one receive loop that never blocks a thread (async receive) and never lets an
/// exception out, and request/response matching on (transaction id, source endpoint). Per datagram, in order: size check,
/// per-source rate limit, swarm-key authenticator (MAC, then timestamp window and replay), parse, then dispatch; each drop
/// is counted. Requests are answered inline by the handler (no I/O besides the reply); answers complete the waiting
/// request and report the answering node, which is the only way a node id reaches the routing table.
/// </summary>
internal sealed class DhtSocket : IAsyncDisposable
{
    /// <summary>
    /// Answers a request; null sends nothing. <paramref name="reachedAt"/> is our address the datagram was sent to (null
    /// when the platform does not say): the address the requester can reach us at, even when we listen on all addresses.
    /// </summary>
    public delegate IDhtBody? RequestHandler(IPEndPoint source, IPAddress? reachedAt, DhtHeader header, IDhtBody body);

    private sealed class Pending(IPEndPoint to, DhtMessageKind expected)
    {
        public readonly IPEndPoint To = to;
        public readonly DhtMessageKind Expected = expected;
        public readonly TaskCompletionSource<DhtReply> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private const int ReceiveBufferLength = 2048; // more than the largest datagram accepted, so an oversized one is seen as such

    private readonly Hash256 _self;
    private readonly DhtOptions _options;
    private readonly DhtCounters _counters;
    private readonly ILogger? _logger;
    private readonly RequestHandler _onRequest;
    private readonly Action<Contact> _onAnswered;
    private readonly SourceRateLimiter _limiter;
    private readonly DatagramAuthenticator? _authenticator;
    private readonly ConcurrentDictionary<ulong, Pending> _pending = new();
    private readonly CancellationTokenSource _stop = new();
    private Socket? _socket;
    private Task? _receiveLoop;
    private bool _dualMode;

    public DhtSocket(Hash256 self, DhtOptions options, DhtCounters counters, RequestHandler onRequest, Action<Contact> onAnswered, ILogger? logger)
    {
        _self = self;
        _options = options;
        _counters = counters;
        _onRequest = onRequest;
        _onAnswered = onAnswered;
        _logger = logger;
        _limiter = new SourceRateLimiter(options);
        if (options.SwarmKey != null)
            _authenticator = new DatagramAuthenticator(options.SwarmKey, options.ReplayWindow, options.MaxReplayEntries, options.TimeProvider);
    }

    public IPEndPoint? LocalEndPoint { get; private set; }
    public int PendingRequests => _pending.Count;

    public void Start(IPEndPoint listen)
    {
        if (_socket != null) throw new InvalidOperationException("already started");
        var socket = new Socket(listen.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (listen.AddressFamily == AddressFamily.InterNetworkV6 && listen.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
                _dualMode = true;
            }
            try { socket.ReceiveBufferSize = _options.SocketReceiveBufferBytes; } catch (SocketException) { }
            socket.Bind(listen);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        _socket = socket;
        var local = (IPEndPoint)socket.LocalEndPoint!;
        LocalEndPoint = DhtAddress.Normalize(local);
        _receiveLoop = ReceiveLoopAsync(socket, _stop.Token);
    }

    /// <summary>Sends a request and waits for its answer; null when none came within <paramref name="timeout"/> or it could not be sent.</summary>
    public async Task<DhtReply?> RequestAsync(IPEndPoint to, IDhtBody request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = _socket ?? throw new InvalidOperationException("not started");
        to = DhtAddress.Normalize(to);
        if (!CanReach(to))
        {
            DhtCounters.Add(ref _counters.SendErrors);
            return null;
        }
        var pending = new Pending(to, DhtLimits.ResponseTo(request.Kind));
        ulong txid;
        do txid = NewTransactionId();
        while (!_pending.TryAdd(txid, pending));
        try
        {
            var datagram = DhtCodec.Encode(new DhtHeader(request.Kind, txid, _self), request, _authenticator);
            DhtCounters.Add(ref _counters.RpcsSent);
            await socket.SendToAsync(datagram, SocketFlags.None, to, cancellationToken).ConfigureAwait(false);
            var reply = await pending.Completion.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            DhtCounters.Add(ref _counters.RpcsAnswered);
            return reply;
        }
        catch (TimeoutException)
        {
            DhtCounters.Add(ref _counters.RpcsTimedOut);
            return null;
        }
        catch (SocketException)
        {
            DhtCounters.Add(ref _counters.SendErrors);
            return null;
        }
        catch (ObjectDisposedException)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return null;
        }
        finally
        {
            _pending.TryRemove(txid, out _);
        }
    }

    private bool CanReach(IPEndPoint to) =>
        _dualMode || to.AddressFamily == LocalEndPoint?.AddressFamily;

    private static ulong NewTransactionId()
    {
        // Unguessable, so an off-path attacker cannot forge answers.
        Span<byte> b = stackalloc byte[8];
        RandomNumberGenerator.Fill(b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    private async Task ReceiveLoopAsync(Socket socket, CancellationToken stop)
    {
        await Task.Yield(); // Start returns at once; the loop runs on the pool
        var buffer = new byte[ReceiveBufferLength];
        EndPoint any = socket.AddressFamily == AddressFamily.InterNetworkV6 ? new IPEndPoint(IPAddress.IPv6Any, 0) : new IPEndPoint(IPAddress.Any, 0);
        int consecutiveErrors = 0;
        while (!stop.IsCancellationRequested)
        {
            int received;
            IPEndPoint source;
            IPAddress? reachedAt;
            try
            {
                // ReceiveMessageFrom, not ReceiveFrom: it also tells the address the datagram was sent to (IP_PKTINFO).
                var result = await socket.ReceiveMessageFromAsync(buffer, SocketFlags.None, any, stop).ConfigureAwait(false);
                received = result.ReceivedBytes;
                source = DhtAddress.Normalize((IPEndPoint)result.RemoteEndPoint);
                reachedAt = result.PacketInformation.Address is { } to && !to.Equals(IPAddress.Any) && !to.Equals(IPAddress.IPv6Any) ? DhtAddress.Normalize(to) : null;
                consecutiveErrors = 0;
            }
            catch (OperationCanceledException) { break; }
            catch (ObjectDisposedException) { break; }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.MessageSize)
            {
                DhtCounters.Add(ref _counters.DatagramsReceived);
                DhtCounters.Add(ref _counters.DroppedOversized);
                continue;
            }
            catch (SocketException e)
            {
                if (stop.IsCancellationRequested) break;
                // ICMP errors surface here on some platforms; they say nothing about the next datagram.
                _logger?.LogDebug("DHT receive error {Error}", e.SocketErrorCode);
                if (++consecutiveErrors > 100) await Task.Delay(10, stop).ConfigureAwait(false);
                continue;
            }

            try
            {
                await HandleDatagramAsync(socket, buffer.AsMemory(0, received), source, reachedAt, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { break; }
            catch (ObjectDisposedException) when (stop.IsCancellationRequested) { break; }
            catch (Exception e)
            {
                DhtCounters.Add(ref _counters.HandlerErrors);
                _logger?.LogWarning(e, "DHT datagram from {Source} failed", source);
            }
        }
    }

    private async ValueTask HandleDatagramAsync(Socket socket, ReadOnlyMemory<byte> datagram, IPEndPoint source, IPAddress? reachedAt, CancellationToken stop)
    {
        if (datagram.Length == 0) return; // a reachability probe (DhtProbe): nothing to answer, nothing wrong
        DhtCounters.Add(ref _counters.DatagramsReceived);
        if (datagram.Length > DhtLimits.MaxDatagramLength)
        {
            DhtCounters.Add(ref _counters.DroppedOversized);
            return;
        }
        if (!_limiter.TryAcquire(source))
        {
            DhtCounters.Add(ref _counters.DroppedRateLimited);
            return;
        }
        var result = DhtCodec.TryDecode(datagram, _authenticator, out var header, out var body);
        switch (result)
        {
            case DecodeResult.Oversized:
                DhtCounters.Add(ref _counters.DroppedOversized);
                return;
            case DecodeResult.BadMac:
                DhtCounters.Add(ref _counters.DroppedBadKey);
                return;
            case DecodeResult.OutsideWindow or DecodeResult.Replayed:
                DhtCounters.Add(ref _counters.DroppedReplayed);
                return;
        }
        if (result != DecodeResult.Ok || body == null || header.Sender == _self)
        {
            DhtCounters.Add(ref _counters.DroppedMalformed);
            return;
        }

        if (DhtLimits.IsResponse(header.Kind))
        {
            if (_pending.TryGetValue(header.TransactionId, out var pending)
                && pending.To.Equals(source) && pending.Expected == header.Kind
                && _pending.TryRemove(new KeyValuePair<ulong, Pending>(header.TransactionId, pending)))
            {
                _onAnswered(new Contact(header.Sender, source));
                pending.Completion.TrySetResult(new DhtReply(header.Sender, source, body));
            }
            else
            {
                // Unknown or already answered transaction, wrong source or wrong kind: a late, replayed or forged answer.
                DhtCounters.Add(ref _counters.DroppedUnsolicited);
            }
            return;
        }

        var response = _onRequest(source, reachedAt, header, body);
        if (response == null) return;
        var reply = DhtCodec.Encode(new DhtHeader(response.Kind, header.TransactionId, _self), response, _authenticator);
        try
        {
            await socket.SendToAsync(reply, SocketFlags.None, source, stop).ConfigureAwait(false);
            DhtCounters.Add(ref _counters.RequestsAnswered);
        }
        catch (SocketException)
        {
            DhtCounters.Add(ref _counters.SendErrors);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket?.Dispose();
        if (_receiveLoop != null)
        {
            try { await _receiveLoop.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        foreach (var p in _pending.Values) p.Completion.TrySetCanceled();
        _stop.Dispose();
    }
}
