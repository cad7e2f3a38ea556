using System.Buffers.Binary;
using MessagePack;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Exchange;

/// <summary>
/// Misbehaviour after a correct handshake. Malformed frames close the connection; well-formed but unacceptable requests
/// get a Reject and the connection stays usable; every request gets exactly one answer. After each attack the node
/// still serves a fresh downloader.
/// </summary>
public sealed class SessionAttackTests
{
    /// <summary>2.5 MiB + 1000 bytes: 11 pieces of 256 KiB (the last one 1000 bytes), so the bitfield has spare bits.</summary>
    private const long ContentLength = 5 * 512 * 1024 + 1000;
    private const int LastPiece = 10;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static async Task<(SeededNode Seed, RawPeer Peer, NodeKey Key)> ConnectAsync()
    {
        var seed = await SeededNode.StartAsync(ContentLength, seed: 11);
        Assert.Equal(LastPiece + 1, seed.Content.Layout.PieceCount);
        var peer = await RawPeer.ConnectAsync(seed.EndPoint);
        var key = NodeKey.Generate();
        await peer.HandshakeAsync(key, seed.Id);
        await peer.ExpectFrameAsync(MessageKind.HaveAll, Timeout); // the seed announces what it has
        return (seed, peer, key);
    }

    private static async Task UnchokeAsync(RawPeer peer)
    {
        await peer.SendSignalAsync(MessageKind.Interested);
        await peer.ExpectFrameAsync(MessageKind.Unchoke, Timeout);
    }

    private static byte[] Slice(SeededNode seed, int piece, int offset, int length) =>
        seed.Original.AsSpan((int)seed.Content.Layout.PieceOffset(piece) + offset, length).ToArray();

    /// <summary>Proves the connection is still open and served: a valid request is answered with the right bytes.</summary>
    private static async Task AssertServesBlockAsync(SeededNode seed, RawPeer peer, int piece, int offset)
    {
        int length = seed.Content.Layout.BlockLength(piece, offset / PieceLayout.BlockSize);
        await peer.SendMessageAsync(new Request(piece, offset, length));
        var (header, data) = (await peer.ExpectFrameAsync(MessageKind.Block, Timeout)).DecodeBlock();
        Assert.Equal(new BlockHeader(piece, offset), header);
        Assert.Equal(Slice(seed, piece, offset, length), data);
    }

    private static async Task AssertClosedAsync(SeededNode seed, RawPeer peer)
    {
        var frames = await peer.WaitForCloseAsync(Timeout);
        Assert.DoesNotContain(frames, f => f.Kind is MessageKind.Block);
        await Poll.UntilAsync(() => seed.Node.Engine.Find(seed.Id)!.PeerCount == 0, Timeout, "the session to be detached");
    }

    public static TheoryData<string> GarbageRequestBodies => new()
    {
        "empty", "c1", "two of three fields", "four fields", "negative piece", "map", "string fields", "trailing byte", "piece too big for int32",
    };

    private static byte[] GarbageRequest(string name) => name switch
    {
        "empty" => [],
        "c1" => [0xC1, 0xC1, 0xC1],
        "two of three fields" => [0x93, 0x00, 0x00],
        "four fields" => [0x94, 0x00, 0x00, 0x00, 0x00],
        "negative piece" => [0x93, 0xFF, 0x00, 0x00],
        "map" => [0x83, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00],
        "string fields" => [0x93, 0xA1, 0x61, 0xA1, 0x62, 0xA1, 0x63],
        "trailing byte" => [.. RawPeer.Encode(new Request(0, 0, PieceLayout.BlockSize)), 0x00],
        "piece too big for int32" => Pack.Bytes((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(3);
            w.Write(ulong.MaxValue);
            w.Write(0);
            w.Write(PieceLayout.BlockSize);
        }),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(GarbageRequestBodies))]
    public async Task Garbage_request_body_closes_the_connection(string garbage)
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await UnchokeAsync(peer);
            await peer.SendIgnoringResetAsync(RawPeer.Frame(MessageKind.Request, GarbageRequest(garbage)));
            await AssertClosedAsync(seed, peer);
            await seed.AssertStillServesAsync();
        }
    }

    [Fact]
    public async Task Unrequested_block_is_refused_from_its_prefix_and_never_stored()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            // All but the last byte of a block nobody asked for: the node refuses it from the 5-byte prefix and closes.
            var junk = new byte[PieceLayout.BlockSize];
            junk.AsSpan().Fill(0xAB);
            var frame = RawPeer.BlockFrame(new BlockHeader(0, 0), junk);
            await peer.SendIgnoringResetAsync(frame.AsMemory(0, frame.Length - 1));
            await AssertClosedAsync(seed, peer);
            Assert.Equal(0, seed.Node.Engine.TotalBytesFromPeers);
            await seed.AssertStillServesAsync();
        }
    }

    public static TheoryData<int, int, int> BlocksThatDoNotFit => new()
    {
        { LastPiece + 1, 0, PieceLayout.BlockSize },     // no such piece
        { int.MaxValue, 0, 16 },
        { 0, 0, 100 },                                  // wrong length
        { 0, 1, PieceLayout.BlockSize },                // misaligned
        { 0, 2 * PieceLayout.BlockSize, PieceLayout.BlockSize }, // past the end of the piece
        { LastPiece, 0, 1001 },                         // longer than the last piece
    };

    [Theory]
    [MemberData(nameof(BlocksThatDoNotFit))]
    public async Task Block_that_does_not_fit_the_content_closes_the_connection(int piece, int offset, int length)
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await peer.SendIgnoringResetAsync(RawPeer.BlockFrame(new BlockHeader(piece, offset), new byte[length]));
            await AssertClosedAsync(seed, peer);
            await seed.AssertStillServesAsync();
        }
    }

    public static TheoryData<string> BadBitfields => new() { "one byte short", "one byte long", "empty", "spare bits set", "much too long" };

    [Theory]
    [MemberData(nameof(BadBitfields))]
    public async Task Bitfield_of_the_wrong_length_closes_the_connection(string kind)
    {
        // 11 pieces: 2 bytes, 5 spare bits in the second.
        byte[] bits = kind switch
        {
            "one byte short" => [0xFF],
            "one byte long" => [0xFF, 0xE0, 0x00],
            "empty" => [],
            "spare bits set" => [0xFF, 0xFF],
            "much too long" => new byte[4096],
            _ => throw new ArgumentException(kind),
        };
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await peer.SendIgnoringResetAsync(RawPeer.Frame(new BitfieldMessage(bits)));
            await AssertClosedAsync(seed, peer);
            await seed.AssertStillServesAsync();
        }
    }

    [Fact]
    public async Task Bitfield_of_the_right_length_is_accepted()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await peer.SendMessageAsync(new BitfieldMessage([0x80, 0x00]));
            await UnchokeAsync(peer);
            await AssertServesBlockAsync(seed, peer, 3, PieceLayout.BlockSize);
        }
    }

    public static TheoryData<int, int, int> InvalidRequests => new()
    {
        { LastPiece + 1, 0, PieceLayout.BlockSize },    // no such piece
        { int.MaxValue, 0, PieceLayout.BlockSize },
        { 0, 1, PieceLayout.BlockSize },                // misaligned
        { 0, 0, 1 },                                    // not a whole block
        { 0, 0, WireLimits.MaxBlockLength },            // bigger than a block
        { 0, 2 * PieceLayout.BlockSize, PieceLayout.BlockSize }, // past the end of the piece
        { LastPiece, 0, PieceLayout.BlockSize },        // longer than the last piece
        { 0, 0, 0 },
    };

    [Theory]
    [MemberData(nameof(InvalidRequests))]
    public async Task Request_outside_the_content_gets_a_reject_and_the_connection_stays_open(int piece, int offset, int length)
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await UnchokeAsync(peer);
            await peer.SendMessageAsync(new Request(piece, offset, length));
            var reject = (await peer.ExpectFrameAsync(MessageKind.Reject, Timeout)).Decode<Reject>();
            Assert.Equal(new Reject(piece, offset, length, RejectReason.Invalid), reject);
            await AssertServesBlockAsync(seed, peer, 1, PieceLayout.BlockSize);
            await seed.AssertStillServesAsync();
        }
    }

    [Fact]
    public async Task Request_while_choked_gets_a_choked_reject()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await peer.SendMessageAsync(new Request(0, 0, PieceLayout.BlockSize));
            var reject = (await peer.ExpectFrameAsync(MessageKind.Reject, Timeout)).Decode<Reject>();
            Assert.Equal(new Reject(0, 0, PieceLayout.BlockSize, RejectReason.Choked), reject);
            await UnchokeAsync(peer);
            await AssertServesBlockAsync(seed, peer, 0, 0);
        }
    }

    /// <summary>A mixed pipeline of valid, duplicate and invalid requests: each one is answered exactly once.</summary>
    [Fact]
    public async Task Every_request_gets_exactly_one_answer()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await UnchokeAsync(peer);
            var layout = seed.Content.Layout;
            var requests = new List<Request>();
            for (int p = 0; p < layout.PieceCount; p++)
                for (int b = 0; b < layout.BlockCount(p); b++)
                    requests.Add(new Request(p, b * PieceLayout.BlockSize, layout.BlockLength(p, b)));
            requests.Add(new Request(0, 0, PieceLayout.BlockSize)); // a duplicate is answered again
            requests.Add(new Request(LastPiece + 5, 0, PieceLayout.BlockSize));
            requests.Add(new Request(2, 7, PieceLayout.BlockSize));
            requests.Add(new Request(LastPiece, 0, 999));
            await peer.SendAsync(requests.SelectMany(r => RawPeer.Frame(r)).ToArray());

            var expected = requests.GroupBy(r => (r.Piece, r.Offset)).ToDictionary(g => g.Key, g => g.Count());
            var answered = new Dictionary<(int, int), int>();
            for (int i = 0; i < requests.Count; i++)
            {
                var frame = await peer.ReadFrameAsync(Timeout) ?? throw new InvalidOperationException($"connection closed after {i} answers");
                if (frame.Kind == MessageKind.KeepAlive) { i--; continue; }
                (int, int) at;
                if (frame.Kind == MessageKind.Block)
                {
                    var (header, data) = frame.DecodeBlock();
                    at = (header.Piece, header.Offset);
                    Assert.Equal(Slice(seed, header.Piece, header.Offset, data.Length), data);
                }
                else
                {
                    Assert.Equal(MessageKind.Reject, frame.Kind);
                    var reject = frame.Decode<Reject>();
                    Assert.Equal(RejectReason.Invalid, reject.Reason);
                    at = (reject.Piece, reject.Offset);
                }
                Assert.True(expected.ContainsKey(at), $"answer for {at}, which was never requested");
                answered[at] = answered.GetValueOrDefault(at) + 1;
            }
            Assert.Equal(expected.OrderBy(e => e.Key).ToList(), answered.OrderBy(e => e.Key).ToList());
            // Nothing more is pending: the next answer is the one for a fresh request.
            await AssertServesBlockAsync(seed, peer, 4, 0);
        }
    }

    /// <summary>More requests than the node queues (512): the excess is rejected, yet each request still gets one answer.</summary>
    [Fact]
    public async Task A_flood_of_requests_is_answered_one_for_one()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await UnchokeAsync(peer);
            const int count = WireLimits.MaxQueuedRequests + 300;
            var one = RawPeer.Frame(new Request(LastPiece, 0, 1000));
            await peer.SendAsync(Enumerable.Repeat(one, count).SelectMany(f => f).ToArray());
            int blocks = 0, rejects = 0;
            while (blocks + rejects < count)
            {
                var frame = await peer.ReadFrameAsync(Timeout) ?? throw new InvalidOperationException($"connection closed after {blocks + rejects} answers");
                if (frame.Kind == MessageKind.Block) blocks++;
                else if (frame.Kind == MessageKind.Reject)
                {
                    Assert.Equal(RejectReason.TooManyRequests, frame.Decode<Reject>().Reason);
                    rejects++;
                }
                else Assert.Equal(MessageKind.KeepAlive, frame.Kind);
            }
            Assert.True(blocks >= 1, "no request was served");
            await AssertServesBlockAsync(seed, peer, 0, 0);
        }
    }

    /// <summary>A cancel for a block that is not queued is a no-op (BEP 6): a later request for that block is served.</summary>
    [Fact]
    public async Task Cancel_for_a_block_never_requested_does_not_poison_a_later_request()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await UnchokeAsync(peer);
            await peer.SendMessageAsync(new Cancel(2, 0, PieceLayout.BlockSize));
            await AssertServesBlockAsync(seed, peer, 2, 0);
        }
    }

    /// <summary>A block already sent cannot be cancelled; a cancel arriving after it must not reject the next request for it.</summary>
    [Fact]
    public async Task Cancel_after_the_block_was_sent_does_not_poison_a_later_request()
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            await UnchokeAsync(peer);
            await AssertServesBlockAsync(seed, peer, 5, 0);
            await peer.SendMessageAsync(new Cancel(5, 0, PieceLayout.BlockSize));
            await AssertServesBlockAsync(seed, peer, 5, 0);
        }
    }

    public static TheoryData<string> ProtocolViolations => new()
    {
        "hello after handshake", "proof after handshake", "unknown kind 99", "second have-all", "have for a piece out of range",
        "have-all with a body", "interested with a body", "oversized block prefix", "4 GiB prefix", "garbage hashes", "garbage cancel",
    };

    [Theory]
    [MemberData(nameof(ProtocolViolations))]
    public async Task Protocol_violation_after_the_handshake_closes_the_connection(string violation)
    {
        var (seed, peer, key) = await ConnectAsync();
        await using (seed)
        await using (peer)
        using (key)
        {
            byte[] bytes;
            switch (violation)
            {
                case "hello after handshake":
                    bytes = RawPeer.Frame(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, new byte[32], seed.Id.Value, 0));
                    break;
                case "proof after handshake": bytes = RawPeer.Frame(new HelloProof(new byte[64])); break;
                case "unknown kind 99": bytes = RawPeer.Frame((MessageKind)99, [0x90]); break;
                case "second have-all": bytes = [.. RawPeer.Frame(MessageKind.HaveAll, []), .. RawPeer.Frame(MessageKind.HaveAll, [])]; break;
                case "have for a piece out of range": bytes = RawPeer.Frame(new Have(LastPiece + 1)); break;
                case "have-all with a body": bytes = RawPeer.Frame(MessageKind.HaveAll, [0x00]); break;
                case "interested with a body": bytes = RawPeer.Frame(MessageKind.Interested, [0x00]); break;
                case "oversized block prefix":
                    bytes = new byte[FrameCodec.PrefixLength];
                    BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)WireLimits.MaxFrame(MessageKind.Block) + 1);
                    bytes[4] = (byte)MessageKind.Block;
                    break;
                case "4 GiB prefix": bytes = [0xFF, 0xFF, 0xFF, 0xFF, (byte)MessageKind.Block]; break;
                case "garbage hashes": bytes = RawPeer.Frame(MessageKind.Hashes, [0x92, 0xC0, 0xC0]); break;
                case "garbage cancel": bytes = RawPeer.Frame(MessageKind.Cancel, [0xC1]); break;
                default: throw new ArgumentException(violation);
            }
            await peer.SendIgnoringResetAsync(bytes);
            await AssertClosedAsync(seed, peer);
            await seed.AssertStillServesAsync();
        }
    }

    /// <summary>A peer may pipeline frames right behind its handshake proof; they are buffered with the proof and must not be lost.</summary>
    [Fact]
    public async Task Frames_pipelined_behind_the_handshake_proof_are_processed()
    {
        await using var seed = await SeededNode.StartAsync(ContentLength, seed: 11);
        using var key = NodeKey.Generate();
        await using var peer = await RawPeer.ConnectAsync(seed.EndPoint);
        byte[] nonce = System.Security.Cryptography.RandomNumberGenerator.GetBytes(Hello.NonceLength);
        await peer.AdmitAsync(key);
        await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, nonce, seed.Id.Value, 0));
        var hello = (await peer.ExpectFrameAsync(MessageKind.Hello, Timeout)).Decode<Hello>();
        await peer.ExpectFrameAsync(MessageKind.HelloProof, Timeout);
        byte[] proof = RawPeer.Frame(new HelloProof(key.Sign(RawPeer.HandshakePayload(hello.Nonce, nonce, seed.Id.Value, key.NodeId))));
        await peer.SendAsync((byte[])[.. proof, .. RawPeer.Frame(MessageKind.Interested, []), .. RawPeer.Frame(new Request(LastPiece, 0, 1000))]);
        await peer.ExpectFrameAsync(MessageKind.HaveAll, Timeout);
        await peer.ExpectFrameAsync(MessageKind.Unchoke, Timeout);
        var (header, data) = (await peer.ExpectFrameAsync(MessageKind.Block, Timeout)).DecodeBlock();
        Assert.Equal(new BlockHeader(LastPiece, 0), header);
        Assert.Equal(Slice(seed, LastPiece, 0, 1000), data);
    }

    /// <summary>A node holding part of the content announces exactly that, serves verified pieces and rejects the rest.</summary>
    [Fact]
    public async Task Partial_node_serves_only_verified_pieces_and_rejects_the_others()
    {
        await using var seed = await SeededNode.StartAsync(ContentLength, seed: 11);
        await using var partial = new TestNode();
        var content = partial.Store.OpenOrCreate(seed.Content.Manifest, seed.Content.Signature);
        var layout = content.Layout;
        foreach (int piece in new[] { 0, 3, LastPiece })
            Assert.True(content.TryCommitPiece(piece, Slice(seed, piece, 0, layout.PieceLength(piece))));
        partial.Engine.Serve(content);

        using var key = NodeKey.Generate();
        await using var peer = await RawPeer.ConnectAsync(partial.EndPoint);
        await peer.HandshakeAsync(key, seed.Id);
        var bits = (await peer.ExpectFrameAsync(MessageKind.Bitfield, Timeout)).Decode<BitfieldMessage>().Bits;
        Assert.Equal(new byte[] { 0b1001_0000, 0b0010_0000 }, bits);
        await UnchokeAsync(peer);

        await peer.SendMessageAsync(new Request(1, 0, PieceLayout.BlockSize));
        Assert.Equal(new Reject(1, 0, PieceLayout.BlockSize, RejectReason.NotAvailable), (await peer.ExpectFrameAsync(MessageKind.Reject, Timeout)).Decode<Reject>());
        var (header, data) = await RequestBlockAsync(peer, 3, PieceLayout.BlockSize);
        Assert.Equal(new BlockHeader(3, PieceLayout.BlockSize), header);
        Assert.Equal(Slice(seed, 3, PieceLayout.BlockSize, PieceLayout.BlockSize), data);
        (header, data) = await RequestBlockAsync(peer, LastPiece, 0, 1000);
        Assert.Equal(Slice(seed, LastPiece, 0, 1000), data);
    }

    private static async Task<(BlockHeader, byte[])> RequestBlockAsync(RawPeer peer, int piece, int offset, int length = PieceLayout.BlockSize)
    {
        await peer.SendMessageAsync(new Request(piece, offset, length));
        return (await peer.ExpectFrameAsync(MessageKind.Block, Timeout)).DecodeBlock();
    }
}
