using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using MessagePack;

namespace Swarm.Core.Wire;

/// <summary>
/// One TCP connection speaking frames. Receiving: a PipeReader over the socket and a parse loop that handles every whole
/// frame in the buffer, then <c>AdvanceTo(consumed, examined)</c>. Sending: writers serialise on a lock into a Pipe whose
/// reader is a send loop into the socket; <c>FlushAsync</c> waits when the peer reads slower than we write (back-pressure).
/// </summary>
public sealed class FrameConnection : IAsyncDisposable
{
    private const int PauseWriterThreshold = 4 * 1024 * 1024;
    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly PipeReader _input;
    private readonly Pipe _output;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private readonly CancellationTokenSource _closed = new();
    private readonly Task _sendLoop;
    private readonly Task _controlLoop;
    private readonly Lock _controlLock = new();
    private readonly SemaphoreSlim _controlSignal = new(0);
    private readonly ArrayBufferWriter<byte> _controlScratch = new(256);
    private ArrayBufferWriter<byte> _control = new(4096);
    private bool _controlPending;
    private int _disposed;

    /// <summary>
    /// A connection over <paramref name="socket"/>, speaking frames on <paramref name="stream"/> (encrypted after admission; a
    /// plain stream over the socket when null). Idle connections hold no receive buffer (zero-byte reads): a node with
    /// many quiet peers keeps no memory for them.
    /// </summary>
    public FrameConnection(Socket socket, Stream? stream = null, byte[]? peerKey = null)
    {
        _socket = socket;
        _socket.NoDelay = true;
        RemoteEndPoint = (IPEndPoint)socket.RemoteEndPoint!;
        _stream = stream ?? new NetworkStream(socket, ownsSocket: false);
        PeerKey = peerKey;
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true, useZeroByteReads: true));
        _output = new Pipe(new PipeOptions(pauseWriterThreshold: PauseWriterThreshold, resumeWriterThreshold: PauseWriterThreshold / 2,
            minimumSegmentSize: 64 * 1024, useSynchronizationContext: false));
        _sendLoop = Task.Run(SendLoopAsync);
        _controlLoop = Task.Run(ControlLoopAsync);
        LastReceived = LastSent = Environment.TickCount64;
    }

    /// <summary>The node key the peer signed the encrypted channel with (null when not encrypted); the handshake pins it to the node id.</summary>
    public byte[]? PeerKey { get; }

    /// <summary>Whether the frames travel encrypted.</summary>
    public bool IsEncrypted => PeerKey != null;

    public IPEndPoint RemoteEndPoint { get; }
    /// <summary>Cancelled when the connection closes for any reason.</summary>
    public CancellationToken Closed => _closed.Token;
    public long LastReceived { get; private set; }
    public long LastSent { get; private set; }
    public long BytesReceived { get; private set; }
    public long BytesSent { get; private set; }

    /// <summary>Connects, and with <paramref name="security"/> passes admission (swarm key, encrypted channel) before any frame.</summary>
    public static async Task<FrameConnection> ConnectAsync(IPEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken, TransportSecurity? security = null)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endPoint, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"connecting to {endPoint} timed out after {timeout.TotalSeconds:0.#} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        if (security == null) return new FrameConnection(socket);
        try
        {
            socket.NoDelay = true;
            var admitted = await PeerTransport.DialAsync(socket, security, cancellationToken).ConfigureAwait(false);
            return new FrameConnection(socket, admitted.Stream, admitted.PeerKey);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>An accepted socket after admission (swarm key, encrypted channel); the caller bounds the time with <paramref name="cancellationToken"/>.</summary>
    public static async Task<FrameConnection> AcceptAsync(Socket socket, TransportSecurity security, CancellationToken cancellationToken, Action? onPreamble = null)
    {
        socket.NoDelay = true;
        var admitted = await PeerTransport.AcceptAsync(socket, security, cancellationToken, onPreamble).ConfigureAwait(false);
        return new FrameConnection(socket, admitted.Stream, admitted.PeerKey);
    }

    /// <summary>
    /// Queues a control message (have, request, reject, choke, ...) without waiting: a separate loop writes queued messages
    /// between blocks. The receive loop uses this, so it never waits on back-pressure; otherwise two peers uploading to each
    /// other could each stop reading while waiting to write.
    /// </summary>
    public void Post<T>(T message) where T : IWireMessage<T>
    {
        if (_closed.IsCancellationRequested) return;
        lock (_controlLock)
        {
            FrameCodec.WriteMessage(_control, _controlScratch, message);
            SignalControl();
        }
    }

    /// <summary>Queues a message without a body, or a keep-alive (<see cref="MessageKind.KeepAlive"/>).</summary>
    public void PostSignal(MessageKind kind)
    {
        if (_closed.IsCancellationRequested) return;
        lock (_controlLock)
        {
            if (kind == MessageKind.KeepAlive)
            {
                _control.GetSpan(4)[..4].Clear();
                _control.Advance(4);
            }
            else
            {
                FrameCodec.WritePrefix(_control.GetSpan(FrameCodec.PrefixLength), kind, 0);
                _control.Advance(FrameCodec.PrefixLength);
            }
            SignalControl();
        }
    }

    private void SignalControl()
    {
        if (_controlPending) return;
        _controlPending = true;
        try
        {
            _controlSignal.Release();
        }
        catch (ObjectDisposedException)
        {
            // Closed meanwhile: the message has nowhere to go.
        }
    }

    private async Task ControlLoopAsync()
    {
        try
        {
            while (true)
            {
                await _controlSignal.WaitAsync(_closed.Token).ConfigureAwait(false);
                await _sendLock.WaitAsync(_closed.Token).ConfigureAwait(false);
                try
                {
                    if (WritePendingControl()) await FlushAsync(_closed.Token).ConfigureAwait(false);
                }
                finally
                {
                    _sendLock.Release();
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            Close();
        }
    }

    /// <summary>
    /// Under the send lock: moves posted control frames into the output first, so a frame sent now never overtakes a
    /// message posted before it (an Unchoke must reach the peer before the Block it allows). True when it wrote any.
    /// </summary>
    private bool WritePendingControl()
    {
        lock (_controlLock)
        {
            _controlPending = false;
            if (_control.WrittenCount == 0) return false;
            _output.Writer.Write(_control.WrittenSpan);
            _control.ResetWrittenCount();
            return true;
        }
    }

    /// <summary>Sends one message with a MessagePack header.</summary>
    public async ValueTask SendAsync<T>(T message, CancellationToken cancellationToken = default) where T : IWireMessage<T>
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WritePendingControl();
            FrameCodec.WriteMessage(_output.Writer, _scratch, message);
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a message that has no body (have-all, choke, interested, ...), or a keep-alive.</summary>
    public async ValueTask SendSignalAsync(MessageKind kind, CancellationToken cancellationToken = default)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WritePendingControl();
            if (kind == MessageKind.KeepAlive)
            {
                var span = _output.Writer.GetSpan(4);
                span[..4].Clear();
                _output.Writer.Advance(4);
            }
            else
            {
                var span = _output.Writer.GetSpan(FrameCodec.PrefixLength);
                FrameCodec.WritePrefix(span, kind, 0);
                _output.Writer.Advance(FrameCodec.PrefixLength);
            }
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Sends a block: the header, then <paramref name="length"/> bytes that <paramref name="fill"/> writes straight into the
    /// send buffer (for example a positional read from the data file), so block bytes are copied once.
    /// </summary>
    public async ValueTask SendBlockAsync<TState>(BlockHeader header, int length, TState state, Action<TState, Span<byte>> fill, CancellationToken cancellationToken = default)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WritePendingControl();
            FrameCodec.WriteBlock(_output.Writer, _scratch, header, length, state, fill);
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        var result = await _output.Writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCompleted || result.IsCanceled) throw new IOException($"connection to {RemoteEndPoint} is closed");
        LastSent = Environment.TickCount64;
    }

    private async Task SendLoopAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (_stream is EncryptedStream encrypted) await encrypted.WriteAsync(buffer).ConfigureAwait(false); // many records, one write
                else foreach (var segment in buffer) await _stream.WriteAsync(segment).ConfigureAwait(false);
                BytesSent += buffer.Length;
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled) break;
            }
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            await reader.CompleteAsync(e).ConfigureAwait(false);
            Close();
        }
    }

    /// <summary>
    /// Reads frames until the peer closes, the token is cancelled, or a frame breaks the protocol
    /// (<see cref="WireProtocolException"/>). The frame body is valid only during the handler call.
    /// <paramref name="admit"/>, when given, sees each frame's kind and length as soon as its 5-byte prefix is in, once
    /// per frame, and throws to refuse it: a frame the session does not expect is never buffered.
    /// </summary>
    public async Task ReceiveAsync(Func<Frame, ValueTask> handler, CancellationToken cancellationToken, Action<MessageKind, int>? admit = null)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        bool headAdmitted = false;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await _input.ReadAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_closed.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                return;
            }
            var buffer = result.Buffer;
            long before = buffer.Length;
            try
            {
                while (true)
                {
                    if (admit != null && !headAdmitted && FrameCodec.TryPeekPrefix(buffer, out var kind, out int length))
                    {
                        admit(kind, length);
                        headAdmitted = true;
                    }
                    if (!FrameCodec.TryReadFrame(ref buffer, out var frame)) break;
                    headAdmitted = false;
                    LastReceived = Environment.TickCount64;
                    await handler(frame).ConfigureAwait(false);
                }
                if (result.IsCompleted)
                {
                    if (!buffer.IsEmpty) throw new WireProtocolException($"connection closed in the middle of a frame ({buffer.Length} bytes left over)");
                    return;
                }
            }
            finally
            {
                BytesReceived += before - buffer.Length;
                _input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
    }

    /// <summary>Reads exactly one frame (handshake phase) and hands it to <paramref name="handler"/>.</summary>
    public async Task<T> ReceiveOneAsync<T>(Func<Frame, T> handler, CancellationToken cancellationToken, MessageKind? only = null)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        while (true)
        {
            var result = await _input.ReadAsync(linked.Token).ConfigureAwait(false);
            var buffer = result.Buffer;
            bool parsed = false;
            try
            {
                if (FrameCodec.TryReadFrame(ref buffer, out var frame, only))
                {
                    parsed = true;
                    LastReceived = Environment.TickCount64;
                    return handler(frame);
                }
                if (result.IsCompleted) throw new PeerClosedException("connection closed during the handshake");
            }
            finally
            {
                // After taking a frame, leave the rest unexamined: the next frame may already be buffered.
                if (parsed) _input.AdvanceTo(buffer.Start);
                else _input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
    }

    /// <summary>Closes the socket now; pending sends and receives end.</summary>
    public void Close()
    {
        if (_closed.IsCancellationRequested) return;
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        _socket.Close();
        _output.Writer.CancelPendingFlush();
        _output.Reader.CancelPendingRead();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (!_closed.IsCancellationRequested)
        {
            // Graceful: let what was already written reach the socket (bounded), then close.
            await _sendLock.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            await _output.Writer.CompleteAsync().ConfigureAwait(false);
            try { await _sendLoop.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false); } catch (Exception) { }
        }
        Close();
        try { await _sendLoop.ConfigureAwait(false); } catch (Exception) { }
        try { await _controlLoop.ConfigureAwait(false); } catch (Exception) { }
        await _input.CompleteAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        _sendLock.Dispose();
        _controlSignal.Dispose();
        _closed.Dispose();
    }
}
