using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using MessagePack;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Wire;

namespace Swarm.Tests.Support;

/// <summary>A frame as read off the socket by <see cref="RawPeer"/>, parsed independently of the code under test.</summary>
public readonly record struct RawFrame(MessageKind Kind, byte[] Body)
{
    public T Decode<T>() where T : IWireMessage<T> => WireMessage.Decode<T>(new ReadOnlySequence<byte>(Body));

    public (BlockHeader Header, byte[] Data) DecodeBlock()
    {
        var header = WireMessage.DecodeHeader<BlockHeader>(new ReadOnlySequence<byte>(Body), out long consumed);
        return (header, Body[(int)consumed..]);
    }

    public override string ToString() => $"{Kind} ({Body.Length} bytes)";
}

/// <summary>
/// A hand-driven peer on a raw TCP socket: sends arbitrary (also malformed) bytes and reads frames with its own parser,
/// so tests can attack a node and observe exactly what it answers. Every read is bounded by a timeout.
/// </summary>
public sealed class RawPeer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _network;
    private Stream? _admitted;
    private TransportSecurity? _security;
    private byte[] _buffer = new byte[64 * 1024];
    private int _start, _end;

    private RawPeer(Socket socket)
    {
        _socket = socket;
        _network = new NetworkStream(socket, ownsSocket: false);
    }

    public Socket Socket => _socket;

    /// <summary>
    /// Before its handshake a raw peer first passes admission (the transport preamble and the encrypted channel) as a node would, with
    /// this swarm key (null: open swarm) and encryption; bytes sent before any handshake go out raw (pre-admission attacks).
    /// </summary>
    public SwarmKey? SwarmKey { get; init; }
    public bool Encrypt { get; init; } = true;

    /// <summary>The stream frames go over: the admitted (encrypted) stream once admitted, the raw socket before.</summary>
    private Stream Stream => _admitted ?? _network;

    /// <summary>Dialer's admission with <paramref name="key"/>; done by <see cref="HandshakeAsync"/> when not done before.</summary>
    public Task AdmitAsync(NodeKey key) => AdmitAsync(key, PeerTransport.DialAsync);

    /// <summary>Acceptor's admission (for a hand-driven acceptor that a node dials).</summary>
    public Task AcceptAdmissionAsync(NodeKey key) => AdmitAsync(key, (socket, security, ct) => PeerTransport.AcceptAsync(socket, security, ct));

    private async Task AdmitAsync(NodeKey key, Func<Socket, TransportSecurity, CancellationToken, Task<PeerTransport.Admitted>> admit)
    {
        if (_admitted != null) return;
        _security = new TransportSecurity(key, SwarmKey, Encrypt);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(10));
        _admitted = (await admit(_socket, _security, cts.Token)).Stream;
    }

    /// <summary>Wraps an accepted socket (for a hand-driven acceptor).</summary>
    public static RawPeer Wrap(Socket socket) => new(socket);

    /// <param name="from">A source address to connect from (any of 127.0.0.0/8 on Linux), to act as another host.</param>
    public static async Task<RawPeer> ConnectAsync(IPEndPoint endPoint, SwarmKey? swarmKey = null, bool encrypt = true, IPAddress? from = null)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (from != null) socket.Bind(new IPEndPoint(from, 0));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(5));
        await socket.ConnectAsync(endPoint, cts.Token);
        return new RawPeer(socket) { SwarmKey = swarmKey, Encrypt = encrypt };
    }

    // ---- sending ----

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        await Stream.WriteAsync(bytes, TestContext.Current.CancellationToken);
        await Stream.FlushAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Sends and ignores a reset or broken pipe: the node may close while an attack is still being sent.</summary>
    public async Task SendIgnoringResetAsync(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            await SendAsync(bytes);
        }
        catch (SocketException e) when (IsReset(e))
        {
        }
        catch (IOException e) when (e.InnerException is SocketException s && IsReset(s))
        {
        }
    }

    public static byte[] Frame(MessageKind kind, ReadOnlySpan<byte> body)
    {
        var frame = new byte[FrameCodec.PrefixLength + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(body.Length + 1));
        frame[4] = (byte)kind;
        body.CopyTo(frame.AsSpan(FrameCodec.PrefixLength));
        return frame;
    }

    public static byte[] Encode<T>(T message) where T : IWireMessage<T>
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        message.Write(ref w);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] Frame<T>(T message) where T : IWireMessage<T> => Frame(T.Kind, Encode(message));

    public static byte[] BlockFrame(BlockHeader header, ReadOnlySpan<byte> data)
    {
        byte[] h = Encode(header);
        var body = new byte[h.Length + data.Length];
        h.CopyTo(body, 0);
        data.CopyTo(body.AsSpan(h.Length));
        return Frame(MessageKind.Block, body);
    }

    public Task SendFrameAsync(MessageKind kind, ReadOnlySpan<byte> body) => SendAsync(Frame(kind, body));

    public Task SendMessageAsync<T>(T message) where T : IWireMessage<T> => SendAsync(Frame(message));

    public Task SendSignalAsync(MessageKind kind) => SendAsync(Frame(kind, []));

    // ---- receiving ----

    /// <summary>Reads one frame (keep-alives included); null when the node closed or reset the connection.</summary>
    public async Task<RawFrame?> ReadFrameAsync(TimeSpan timeout)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            if (!await FillAsync(4, cts.Token)) return null;
            uint length = BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_start));
            if (length == 0)
            {
                _start += 4;
                return new RawFrame(MessageKind.KeepAlive, []);
            }
            if (length > WireLimits.MaxFrameLength) throw new InvalidDataException($"node sent a frame of {length} bytes");
            if (!await FillAsync(4 + (int)length, cts.Token)) return null;
            var frame = new RawFrame((MessageKind)_buffer[_start + 4], _buffer.AsSpan(_start + 5, (int)length - 1).ToArray());
            _start += 4 + (int)length;
            return frame;
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no frame from the node within {timeout.TotalSeconds:0.#} s");
        }
    }

    /// <summary>Reads frames, skipping keep-alives, until one of <paramref name="kind"/>; fails on close or timeout.</summary>
    public async Task<RawFrame> ExpectFrameAsync(MessageKind kind, TimeSpan timeout)
    {
        while (true)
        {
            var frame = await ReadFrameAsync(timeout) ?? throw new InvalidOperationException($"the node closed the connection while {kind} was expected");
            if (frame.Kind == MessageKind.KeepAlive) continue;
            if (frame.Kind != kind) throw new InvalidOperationException($"expected {kind}, the node sent {frame}");
            return frame;
        }
    }

    /// <summary>
    /// Reads (and collects) frames until the node closes or resets the connection. Returns the frames seen, or throws
    /// <see cref="TimeoutException"/> when the connection is still open after <paramref name="timeout"/>.
    /// </summary>
    public async Task<List<RawFrame>> WaitForCloseAsync(TimeSpan timeout)
    {
        var frames = new List<RawFrame>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var left = timeout - clock.Elapsed;
            if (left <= TimeSpan.Zero) throw new TimeoutException($"the node kept the connection open for {timeout.TotalSeconds:0.#} s (frames seen: {string.Join(", ", frames)})");
            RawFrame? frame;
            try
            {
                frame = await ReadFrameAsync(left);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"the node kept the connection open for {timeout.TotalSeconds:0.#} s (frames seen: {string.Join(", ", frames)})");
            }
            catch (InvalidDataException)
            {
                return frames;
            }
            if (frame == null) return frames;
            frames.Add(frame.Value);
        }
    }

    /// <summary>Makes sure <paramref name="count"/> bytes are buffered; false at end of stream or on a reset.</summary>
    private async Task<bool> FillAsync(int count, CancellationToken cancellationToken)
    {
        if (_end - _start >= count) return true;
        if (_buffer.Length - _start < count)
        {
            var bigger = new byte[Math.Max(_buffer.Length, count * 2)];
            _buffer.AsSpan(_start, _end - _start).CopyTo(bigger);
            _end -= _start;
            _start = 0;
            _buffer = bigger;
        }
        while (_end - _start < count)
        {
            int n;
            try
            {
                n = await Stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            }
            catch (SocketException e) when (IsReset(e))
            {
                return false;
            }
            catch (IOException e) when (e.InnerException is SocketException s && IsReset(s) || e.InnerException is null or System.Security.Authentication.AuthenticationException)
            {
                return false;
            }
            if (n == 0) return false;
            _end += n;
        }
        return true;
    }

    private static bool IsReset(SocketException e) =>
        e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown or SocketError.Disconnecting;

    // ---- handshake ----

    /// <summary>
    /// Runs the dialer's side of the handshake by hand: Hello, the node's Hello and proof (checked), then our proof.
    /// Returns the node's Hello.
    /// </summary>
    public async Task<Hello> HandshakeAsync(NodeKey key, ContentId content)
    {
        await AdmitAsync(key);
        byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
        await SendMessageAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, nonce, content.Value, 0));
        var hello = (await ExpectFrameAsync(MessageKind.Hello, TimeSpan.FromSeconds(5))).Decode<Hello>();
        var proof = (await ExpectFrameAsync(MessageKind.HelloProof, TimeSpan.FromSeconds(5))).Decode<HelloProof>();
        if (!EcdsaSignature.Verify(hello.PublicKey, HandshakePayload(nonce, hello.Nonce, content.Value, hello.NodeId), proof.Signature))
            throw new InvalidOperationException("the node's handshake proof does not verify");
        await SendMessageAsync(new HelloProof(key.Sign(HandshakePayload(hello.Nonce, nonce, content.Value, key.NodeId))));
        return hello;
    }

    /// <summary>What a side signs in the handshake (the wire format, restated here so tests pin it).</summary>
    public static byte[] HandshakePayload(byte[] verifierNonce, byte[] signerNonce, Hash256 content, Hash256 signer)
    {
        byte[] tag = "swarm/handshake/v1"u8.ToArray();
        return [.. tag, .. verifierNonce, .. signerNonce, .. content.ToArray(), .. signer.ToArray()];
    }

    public async ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
        if (_admitted != null) await _admitted.DisposeAsync();
        await _network.DisposeAsync();
        _socket.Dispose();
        _security?.Dispose();
    }
}
