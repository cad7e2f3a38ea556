using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Swarm.Core.Content;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Wire;

/// <summary>FrameConnection over a real loopback socket, with a <see cref="RawPeer"/> at the other end.</summary>
public sealed class FrameConnectionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static async Task<(FrameConnection Connection, RawPeer Peer)> PairAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var accept = listener.AcceptAsync(ct).AsTask();
        var connection = await FrameConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, Timeout, ct);
        var socket = await accept.WaitAsync(Timeout, ct);
        return (connection, RawPeer.Wrap(socket));
    }

    [Fact]
    public async Task Frames_written_a_byte_at_a_time_are_received_whole_and_in_order()
    {
        var (connection, peer) = await PairAsync();
        await using (peer)
        await using (connection)
        {
            var block = new byte[3000];
            new Random(8).NextBytes(block);
            byte[] wire =
            [
                .. RawPeer.Frame(new Have(1)), 0, 0, 0, 0, .. RawPeer.BlockFrame(new BlockHeader(2, PieceLayout.BlockSize), block),
                .. RawPeer.Frame(MessageKind.Unchoke, []), .. RawPeer.Frame(new Request(3, 0, 10)),
            ];
            var received = new List<(MessageKind, byte[])>();
            var receive = connection.ReceiveAsync(frame =>
            {
                received.Add((frame.Kind, frame.Body.ToArray()));
                return ValueTask.CompletedTask;
            }, TestContext.Current.CancellationToken);
            for (int i = 0; i < wire.Length; i += 7) await peer.SendAsync(wire.AsMemory(i, Math.Min(7, wire.Length - i)));
            peer.Socket.Shutdown(SocketShutdown.Send);
            await receive.WaitAsync(Timeout, TestContext.Current.CancellationToken);

            Assert.Equal([MessageKind.Have, MessageKind.KeepAlive, MessageKind.Block, MessageKind.Unchoke, MessageKind.Request], received.Select(r => r.Item1));
            Assert.Equal(new Have(1), WireMessage.Decode<Have>(new(received[0].Item2)));
            var header = WireMessage.DecodeHeader<BlockHeader>(new(received[2].Item2), out long consumed);
            Assert.Equal(new BlockHeader(2, PieceLayout.BlockSize), header);
            Assert.Equal(block, received[2].Item2[(int)consumed..]);
            Assert.Equal(new Request(3, 0, 10), WireMessage.Decode<Request>(new(received[4].Item2)));
        }
    }

    [Fact]
    public async Task Peer_closing_in_the_middle_of_a_frame_is_a_protocol_error()
    {
        var (connection, peer) = await PairAsync();
        await using (peer)
        await using (connection)
        {
            byte[] frame = RawPeer.Frame(new Request(1, 2, 3));
            var receive = connection.ReceiveAsync(_ => ValueTask.CompletedTask, TestContext.Current.CancellationToken);
            await peer.SendAsync(frame.AsMemory(0, frame.Length - 1));
            peer.Socket.Shutdown(SocketShutdown.Send);
            await Assert.ThrowsAsync<WireProtocolException>(() => receive.WaitAsync(Timeout, TestContext.Current.CancellationToken));
        }
    }

    /// <summary>SendAsync has returned, so the message must reach the peer even when the connection is disposed right after.</summary>
    [Fact]
    public async Task Message_sent_before_dispose_reaches_the_peer()
    {
        var (connection, peer) = await PairAsync();
        await using (peer)
        {
            await connection.SendAsync(new Have(5), TestContext.Current.CancellationToken);
            await connection.SendAsync(new Reject(1, 2, 3, RejectReason.ShuttingDown), TestContext.Current.CancellationToken);
            await connection.DisposeAsync();
            var frames = await peer.WaitForCloseAsync(Timeout);
            Assert.Equal([MessageKind.Have, MessageKind.Reject], frames.Select(f => f.Kind));
            Assert.Equal(new Have(5), frames[0].Decode<Have>());
        }
    }

    [Fact]
    public async Task Posted_messages_arrive_in_order()
    {
        var (connection, peer) = await PairAsync();
        await using (peer)
        await using (connection)
        {
            for (int i = 0; i < 100; i++) connection.Post(new Have(i));
            connection.PostSignal(MessageKind.NotInterested);
            for (int i = 0; i < 100; i++) Assert.Equal(new Have(i), (await peer.ExpectFrameAsync(MessageKind.Have, Timeout)).Decode<Have>());
            await peer.ExpectFrameAsync(MessageKind.NotInterested, Timeout);
        }
    }

    /// <summary>
    /// Sessions post haves and rejects from other threads (piece verifiers, the choker) while a connection may be closing.
    /// Posting to a connection that is being or has been disposed must be a no-op, never an exception. A race, so it is
    /// tried many times (bounded to a few seconds) with several posting threads.
    /// </summary>
    [Fact]
    public async Task Posting_while_the_connection_is_disposed_never_throws()
    {
        var ct = TestContext.Current.CancellationToken;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 2000 && clock.Elapsed < TimeSpan.FromSeconds(3); round++)
        {
            var (connection, peer) = await PairAsync();
            await using (peer)
            {
                using var go = new ManualResetEventSlim();
                var posters = Enumerable.Range(0, 4).Select(t => Task.Factory.StartNew(() =>
                {
                    go.Wait(ct);
                    for (int i = 0; i < 500; i++)
                    {
                        if (t % 2 == 0) connection.Post(new Have(i));
                        else connection.PostSignal(MessageKind.KeepAlive);
                    }
                }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
                go.Set();
                await connection.DisposeAsync();
                await Task.WhenAll(posters).WaitAsync(Timeout, ct); // throws what Post threw
            }
        }
    }
}
