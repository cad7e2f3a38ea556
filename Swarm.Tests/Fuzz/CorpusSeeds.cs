using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using MessagePack;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;
using Swarm.Core.Sources;
using Swarm.Core.Wire;
using Swarm.Node;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// The seed inputs of every target, made with the code's own encoders (messages, datagrams, manifests, records, the
/// routing table and task journal writers, a real dialer's and acceptor's admission, the encrypted stream's writer) and
/// the shapes the tests use for JSON files and registry answers.
/// <c>Swarm.Fuzz --write-corpus DIR</c> writes them as <c>DIR/&lt;target&gt;/&lt;name&gt;</c>; the checked-in corpus is that output.
/// </summary>
public static class CorpusSeeds
{
    private static Hash256 H(byte b) => new([.. Enumerable.Repeat(b, 32)]);

    private static byte[] Encode<T>(T message) where T : IWireMessage<T>
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        message.Write(ref w);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] Frame<T>(T message) where T : IWireMessage<T>
    {
        var output = new ArrayBufferWriter<byte>();
        FrameCodec.WriteMessage(output, new ArrayBufferWriter<byte>(), message);
        return output.WrittenSpan.ToArray();
    }

    private static byte[] Empty(MessageKind kind)
    {
        var b = new byte[FrameCodec.PrefixLength];
        FrameCodec.WritePrefix(b, kind, 0);
        return b;
    }

    public static IEnumerable<(string Target, string Name, byte[] Bytes)> All()
    {
        using var key = NodeKey.Generate();
        byte[] publicKey = key.PublicKey;
        byte[] signature = key.Sign("fuzz"u8);
        byte[] nonce = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];
        var hello = new Hello(WireLimits.ProtocolVersion, key.NodeId, publicKey, nonce, H(7), 7400);
        var bitfield = new BitfieldMessage([0xff, 0x0f, 0x80]);
        var peers = new PeerList([new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7400), new IPEndPoint(IPAddress.Parse("2001:db8::1"), 7401)]);
        var pieceHashes = new PieceHashes([new SignedPieceHash(0, H(1).ToArray(), new byte[64]), new SignedPieceHash(3, H(2).ToArray(), signature)]);

        var manifest = new Manifest(3L * PieceLayout.MinPieceSize + 5, PieceLayout.MinPieceSize, [.. Enumerable.Range(0, 4 * 32).Select(i => (byte)i)], publicKey);
        var empty = new Manifest(0, PieceLayout.MinPieceSize, [], publicKey);
        var live = Manifest.Live(10L * PieceLayout.MinPieceSize, PieceLayout.MinPieceSize, publicKey, H(9), "\"etag-1\"");

        // Wire messages: each kind's body.
        yield return ("wire-hello", "hello", Encode(hello));
        yield return ("wire-hello", "hello-port0", Encode(hello with { ListenPort = 0, PublicKey = [1, 2, 3] }));
        yield return ("wire-hello-proof", "proof", Encode(new HelloProof(signature)));
        yield return ("wire-bitfield", "bits", Encode(bitfield));
        yield return ("wire-bitfield", "empty", Encode(new BitfieldMessage([])));
        yield return ("wire-have", "have", Encode(new Have(5)));
        yield return ("wire-have", "have-big", Encode(new Have(int.MaxValue)));
        yield return ("wire-request", "request", Encode(new Request(1, PieceLayout.BlockSize, PieceLayout.BlockSize)));
        yield return ("wire-cancel", "cancel", Encode(new Cancel(1, 0, PieceLayout.BlockSize)));
        yield return ("wire-reject", "reject", Encode(new Reject(1, 0, PieceLayout.BlockSize, RejectReason.Elsewhere)));
        yield return ("wire-block", "header", Encode(new BlockHeader(2, PieceLayout.BlockSize)));
        yield return ("wire-block", "header-data", [.. Encode(new BlockHeader(0, 0)), .. "block bytes"u8]);
        yield return ("wire-hashes", "hashes", Encode(new Hashes(manifest.Encoded, signature)));
        yield return ("wire-hashes", "live", Encode(new Hashes(live.Encoded, [])));
        yield return ("wire-peer-list", "two", Encode(peers));
        yield return ("wire-peer-list", "none", Encode(new PeerList([])));
        yield return ("wire-piece-hashes", "two", Encode(pieceHashes));
        yield return ("wire-seal", "seal", Encode(new Seal(signature)));

        // Frames: a handshake, then a session's traffic; byte 0 = flags (1: Hello only), byte 1 = where the stream is cut.
        yield return ("frame", "hello", [1, 128, .. Frame(hello)]);
        yield return ("frame", "session", [0, 40, .. Frame(new HelloProof(signature)), .. Frame(bitfield), .. Empty(MessageKind.Interested), .. Frame(new Have(3)),
            .. Frame(new Request(0, 0, PieceLayout.BlockSize)), .. new byte[4], .. Frame(new Cancel(0, 0, PieceLayout.BlockSize)), .. Frame(peers)]);
        yield return ("frame", "availability", [0, 200, .. Empty(MessageKind.HaveAll), .. Empty(MessageKind.HaveNone), .. Empty(MessageKind.Choke), .. Empty(MessageKind.Unchoke),
            .. Empty(MessageKind.NotInterested), .. Empty(MessageKind.HashesRequest), .. Frame(new Reject(0, 0, 1, RejectReason.Choked))]);
        var block = new ArrayBufferWriter<byte>();
        FrameCodec.WriteBlock(block, new ArrayBufferWriter<byte>(), new BlockHeader(0, 0), 64, 0, (_, span) => span.Fill(0xab));
        yield return ("frame", "block", [0, 10, .. block.WrittenSpan, .. Frame(new Seal(signature))]);
        yield return ("frame", "live", [0, 90, .. Frame(new Hashes(live.Encoded, [])), .. Frame(pieceHashes)]);

        // DHT datagrams, every kind.
        var contacts = new List<Contact> { new(H(3), new IPEndPoint(IPAddress.Parse("192.0.2.7"), 7400)), new(H(4), new IPEndPoint(IPAddress.Parse("2001:db8::7"), 7400)) };
        var providers = new List<ProviderRecord>
        {
            new(H(5), new IPEndPoint(IPAddress.Parse("192.0.2.8"), 7400), ProviderHoldings.Complete(40), TimeSpan.FromSeconds(12)),
            new(H(6), new IPEndPoint(IPAddress.Parse("192.0.2.9"), 7401), ProviderHoldings.FromBitfield(Bits(2000, 0, 1, 2, 3, 1999)), TimeSpan.Zero),
        };
        var pointer = TaskPointer.Encode(new ContentId(H(8)), live: false, new OriginValidators(1234, "\"etag\"", DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), H(9)));
        var record = SignedRecord.Create(key, H(10), pointer, 3, DateTimeOffset.FromUnixTimeSeconds(1_900_000_000));
        byte[] token = new byte[DhtLimits.TokenLength];
        IDhtBody[] bodies =
        [
            PingRequest.Instance, new PongResponse(new IPEndPoint(IPAddress.Parse("198.51.100.3"), 40000)), new FindNodeRequest(H(11)),
            new NodesResponse(contacts), new GetProvidersRequest(H(12)), new ProvidersResponse(token, providers, contacts),
            new AddProviderRequest(H(13), token, 7400, ProviderHoldings.Partial(1, 10)), new StatusResponse(DhtMessageKind.AddProviderResult, DhtStatus.BadToken),
            new GetRequest(H(14), null), new GetRequest(H(14), key.NodeId), new RecordsResponse(token, [record], contacts), new PutRequest(token, record),
            new StatusResponse(DhtMessageKind.PutResult, DhtStatus.Ok),
        ];
        int n = 0;
        foreach (var body in bodies)
        {
            var header = new DhtHeader(body.Kind, 0x1122334455667788UL + (ulong)n, key.NodeId);
            string name = $"{n++:D2}-{body.Kind.ToString().ToLowerInvariant()}";
            byte[] plain = DhtCodec.Encode(header, body, null);
            yield return ("dht", name, plain);
            yield return ("dht-keyed", name + "-mac-by-harness", [1, .. plain]);
            yield return ("dht-keyed", name + "-mac", [0, .. DhtCodec.Encode(header, body, FuzzTargets.Authenticator)]);
        }

        // Records.
        var rw = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(rw);
        DhtCodec.WriteRecord(ref w, record);
        w.Flush();
        yield return ("signed-record", "pointer", rw.WrittenSpan.ToArray());
        rw.ResetWrittenCount();
        w = new MessagePackWriter(rw);
        DhtCodec.WriteRecord(ref w, SignedRecord.Create(key, H(15), "lease"u8, 0, DateTimeOffset.FromUnixTimeSeconds(1_800_000_000)));
        w.Flush();
        yield return ("signed-record", "lease", rw.WrittenSpan.ToArray());
        rw.ResetWrittenCount();
        w = new MessagePackWriter(rw);
        new ProvidersResponse(token, providers, contacts).Write(ref w);
        w.Flush();
        yield return ("provider-record", "providers", rw.WrittenSpan.ToArray());
        rw.ResetWrittenCount();
        w = new MessagePackWriter(rw);
        new ProvidersResponse(token, [providers[0] with { Holdings = ProviderHoldings.FromBitfield(Bits(100, 0, 1, 2, 50)) }], []).Write(ref w);
        w.Flush();
        yield return ("provider-record", "bitmap", rw.WrittenSpan.ToArray());
        yield return ("task-pointer", "sealed", pointer);
        yield return ("task-pointer", "live", TaskPointer.Encode(new ContentId(H(8)), live: true, new OriginValidators(99, null, null, null)));

        // Manifests.
        yield return ("manifest", "ordinary", manifest.Encoded);
        yield return ("manifest", "empty", empty.Encoded);
        yield return ("manifest", "live", live.Encoded);

        // Registry answers: byte 0 = flags (see FuzzTargets), then the WWW-Authenticate value / token JSON / manifest body.
        yield return ("registry-auth", "bearer", [0, .. "Bearer realm=\"http://auth.fuzz.invalid/token\",service=\"registry.fuzz.invalid\",scope=\"repository:demo/app:pull\""u8]);
        yield return ("registry-auth", "bearer-query", [1, .. "Bearer realm=\"https://auth.fuzz.invalid/token?a=1\",service=reg"u8]);
        yield return ("registry-auth", "basic", [1, .. "Basic realm=\"registry\""u8]);
        yield return ("registry-auth", "escaped", [0, .. "Bearer realm=\"http://a.fuzz.invalid/t\\\"x\", error=\"insufficient_scope\""u8]);
        yield return ("registry-token", "token", "{\"token\":\"abc\",\"expires_in\":300}"u8.ToArray());
        yield return ("registry-token", "access-token", "{\"access_token\":\"abc\",\"expires_in\":\"60\",\"issued_at\":\"2026-01-01T00:00:00Z\"}"u8.ToArray());
        byte[] image = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
            + "\"digest\":\"sha256:" + new string('1', 64) + "\",\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" + new string('2', 64) + "\",\"size\":12345}]}");
        byte[] index = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            + "\"digest\":\"sha256:" + new string('3', 64) + "\",\"size\":500,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},{\"digest\":\"sha256:" + new string('4', 64)
            + "\",\"size\":501,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}}]}");
        byte[] docker = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:" + new string('5', 64) + "\",\"size\":7},\"layers\":[]}");
        byte[] schema1 = "{\"schemaVersion\":1,\"name\":\"demo/app\",\"fsLayers\":[]}"u8.ToArray();
        yield return ("registry-manifest", "image", [0x03, .. image]);
        yield return ("registry-manifest", "index-digest", [0x2c, .. index]);
        yield return ("registry-manifest", "untyped", [0x48, .. docker]);
        yield return ("registry-manifest", "wrong-digest", [0x11, .. schema1]);
        yield return ("oci-index", "image", image);
        yield return ("oci-index", "index", index);
        yield return ("oci-index", "docker", docker);
        yield return ("oci-index", "schema1", schema1);

        // Files of the data directory.
        yield return ("tasks-json", "journal", Journal());
        yield return ("tasks-json", "empty", "[]"u8.ToArray());
        yield return ("swarm-json", "settings", """
            { "quota": "1GiB", "upload-rate": "1MiB/s", "task-ttl": "2d", "bootstrap": ["10.0.0.1:7400", "10.0.0.2:7400"] }
            """u8.ToArray());
        yield return ("swarm-json", "all", Encoding.UTF8.GetBytes("""
            // comments and trailing commas are allowed
            { "listen": "0.0.0.0:7400", "metrics": "off", "mirror": "127.0.0.1:7401", "upstream": "docker.io", "download-rate": "100mbit",
              "high-watermark": 0.95, "low-watermark": "0.5", "max-connections": 64, "log-level": "warning",
              "trusted-publishers": ["
            """ + new string('a', 64) + "\"], }"));
        yield return ("registries-json", "two", """
            { "registry.example.com": { "username": "ci", "password": "secret" },
              "10.0.0.5:5000": { "plainHttp": true }, }
            """u8.ToArray());
        yield return ("registries-json", "empty", "{}"u8.ToArray());

        // Admission: what a real dialer and a real acceptor send each other (one in-memory connection each). Byte 0 (see
        // FuzzTargets.Preamble): bit 0 this side dials, bit 1 keyed, bit 2 encrypted, bit 3 the harness proves, bit 4 it signs, bit 5 one byte a read.
        using var otherNode = NodeKey.Generate();
        var swarmKey = SwarmKey.FromBytes(FuzzTargets.SwarmKey);
        using var otherSwarm = new TransportSecurity(otherNode, SwarmKey.FromBytes(new byte[32]), encrypt: true);
        string[] configurations = ["open", "keyed", "encrypted", "keyed-encrypted"];
        for (int c = 0; c < 4; c++)
        {
            bool keyed = (c & 1) != 0, encrypt = (c & 2) != 0;
            using var dialer = new TransportSecurity(key, keyed ? swarmKey : null, encrypt);
            using var acceptor = new TransportSecurity(otherNode, keyed ? swarmKey : null, encrypt);
            var (dialerSent, acceptorSent) = Admission(dialer, acceptor);
            byte flags = (byte)(c << 1 | 8 | 16);
            yield return ("preamble", $"accept-{configurations[c]}", [flags, .. dialerSent]);
            yield return ("preamble", $"dial-{configurations[c]}", [(byte)(flags | 1), .. acceptorSent]);
            if (c == 3)
            {
                yield return ("preamble", "accept-keyed-encrypted-unproven", [(byte)(c << 1), .. dialerSent]);
                yield return ("preamble", "dial-keyed-encrypted-unsigned", [(byte)(c << 1 | 1 | 8), .. acceptorSent]);
                yield return ("preamble", "dial-keyed-encrypted-one-byte-reads", [(byte)(flags | 1 | 32), .. acceptorSent]);
                byte[] version2 = [.. dialerSent];
                version2[4] = 2;
                yield return ("preamble", "accept-version-2", [flags, .. version2]);
                // A dialer of another swarm: the acceptor's proof is wrong for it.
                var (_, otherReply) = Admission(dialer, otherSwarm);
                yield return ("preamble", "dial-other-swarm-key", [(byte)(flags | 1), .. otherReply]);
            }
        }
        using (var open = new TransportSecurity(key, null, encrypt: true))
        using (var keyedOnly = new TransportSecurity(otherNode, swarmKey, encrypt: true))
        {
            // Flags that differ: the acceptor's reply without a nonce or proof, and the dialer's preamble it refused.
            var (dialerSent, acceptorSent) = Admission(open, keyedOnly);
            yield return ("preamble", "dial-open-to-keyed", [1 | 4 | 16, .. acceptorSent]);
            yield return ("preamble", "accept-keyed-from-open", [2 | 4 | 8 | 16, .. dialerSent]);
        }
        yield return ("preamble", "accept-http", [0, .. "GET / HTTP/1.1\r\nHost: 192.0.2.1:7400\r\n\r\n"u8]);

        // Encrypted records, sealed by the code's own writer with the harness's keys. Byte 0 (see FuzzTargets.EncryptedRecords):
        // bit 0 sealed by the harness, bits 1-3 the reader's buffer (1, 7, 100, 4096, 16 Ki, 64 Ki, 64 Ki + 20, 256 Ki), bits 4-5 the socket's reads (all, 1, 5, 4099).
        byte[] text = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 40).Select(i => $"record {i} of the fuzz corpus; ")));
        yield return ("encrypted-record", "raw-records", [3 << 1, .. Sealed("hello"u8.ToArray(), text, new byte[3000])]);
        yield return ("encrypted-record", "raw-pending", [1 << 1, .. Sealed(text[..700], text[..5])]);
        yield return ("encrypted-record", "raw-one-byte-reads", [1 << 4, .. Sealed(text[..40], text[..1])]);
        yield return ("encrypted-record", "raw-small-reads", [2 << 4 | 2 << 1, .. Sealed(text)]);
        yield return ("encrypted-record", "raw-max-record", [5 << 1, .. Sealed([.. Enumerable.Range(0, EncryptedStream.MaxRecord).Select(i => (byte)i)])]);
        byte[] cut = Sealed(text[..200]);
        yield return ("encrypted-record", "raw-cut", [3 << 1, .. cut.AsSpan(0, cut.Length - 3)]);
        yield return ("encrypted-record", "raw-empty", [0]);
        // Sealed: byte 1 bits 0-2 the record size (1, 2, 16, 255, 4 Ki, 16 Ki, 64 Ki - 1, 64 Ki), bit 3 two segments a write,
        // bits 4-5 the alteration (flip, cut, replay, drop); byte 2 the repeat (1, 1, 1, 1, 2, 16, 256, 4096); bytes 3-5 a position; byte 6 the mask.
        yield return ("encrypted-record", "sealed-intact", [1 | 3 << 1, 3, 0, 0, 0, 0, 0, .. text]);
        yield return ("encrypted-record", "sealed-segments", [1 | 1 << 1, 2 | 8, 4, 0, 0, 0, 0, .. text[..100]]);
        yield return ("encrypted-record", "sealed-flip-length", [1 | 3 << 1, 3, 0, 0, 1, 0x17, 0x01, .. text]);
        yield return ("encrypted-record", "sealed-flip-tag", [1 | 3 << 1, 3, 0, 0, 1, 0x12, 0x80, .. text]);
        yield return ("encrypted-record", "sealed-cut", [1 | 4 << 1, 2 | 1 << 4, 0, 0, 0, 40, 0, .. text]);
        yield return ("encrypted-record", "sealed-replay", [1 | 3 << 1, 3 | 2 << 4, 0, 0, 0, 0, 0, .. text]);
        yield return ("encrypted-record", "sealed-drop", [1 | 3 << 1, 3 | 3 << 4, 0, 0, 0, 0, 0, .. text]);
        // 640 KiB in 16 KiB records read 4099 bytes at a time: past the 512 KiB read-ahead, so a partial record moves to the front.
        yield return ("encrypted-record", "sealed-read-ahead", [1 | 3 << 1 | 3 << 4, 5, 7, 0, 0, 0, 0, .. text[..200]]);
        yield return ("encrypted-record", "sealed-max-records", [1 | 6 << 1, 7 | 8, 6, 0x09, 0x00, 0x10, 0x04, .. text]);

        string dir = Path.Combine(Path.GetTempPath(), $"swarm-seeds-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            string path = Path.Combine(dir, "routing.bin");
            RoutingTableFile.Save(path, H(1), contacts);
            yield return ("routing-bin", "two", File.ReadAllBytes(path));
            RoutingTableFile.Save(path, H(1), []);
            yield return ("routing-bin", "none", File.ReadAllBytes(path));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Records sealed by <see cref="EncryptedStream"/>'s writer with the encrypted-record target's keys, one write each.</summary>
    private static byte[] Sealed(params byte[][] writes)
    {
        var sink = new ScriptedStream([]);
        using (var writer = new EncryptedStream(sink, FuzzTargets.RecordKey, FuzzTargets.ReplyKey))
            foreach (var write in writes) writer.WriteAsync(new ReadOnlySequence<byte>(write)).AsTask().GetAwaiter().GetResult();
        return sink.Written.ToArray();
    }

    /// <summary>One end of an in-memory connection that keeps what it sent.</summary>
    private sealed class PipeEnd(Pipe incoming, Pipe outgoing) : DuplexStream
    {
        private readonly Stream _in = incoming.Reader.AsStream(), _out = outgoing.Writer.AsStream();
        private readonly MemoryStream _sent = new();

        public byte[] Sent => _sent.ToArray();
        public Task CompleteAsync() => outgoing.Writer.CompleteAsync().AsTask();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _in.ReadAsync(buffer, cancellationToken);

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _sent.Write(buffer.Span);
            await _out.WriteAsync(buffer, cancellationToken);
            await _out.FlushAsync(cancellationToken);
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// A real dialer and a real acceptor admitting each other (<see cref="PeerTransport"/> over in-memory pipes): what each
    /// sent. A side that refuses hangs up, so the other ends too.
    /// </summary>
    private static (byte[] Dialer, byte[] Acceptor) Admission(TransportSecurity dialer, TransportSecurity acceptor)
    {
        Pipe toAcceptor = new(), toDialer = new();
        var dialerEnd = new PipeEnd(toDialer, toAcceptor);
        var acceptorEnd = new PipeEnd(toAcceptor, toDialer);
        static async Task Run(Task<PeerTransport.Admitted> admission, PipeEnd end)
        {
            try
            {
                await admission;
            }
            catch (AdmissionException)
            {
            }
            finally
            {
                await end.CompleteAsync();
            }
        }
        var endPoint = FuzzTargets.PeerEndPoint;
        Task.WaitAll(
            Run(PeerTransport.DialAsync(dialerEnd, endPoint, dialer, CancellationToken.None), dialerEnd),
            Run(PeerTransport.AcceptAsync(acceptorEnd, endPoint, acceptor, CancellationToken.None), acceptorEnd));
        return (dialerEnd.Sent, acceptorEnd.Sent);
    }

    private static Bitfield Bits(int length, params int[] set)
    {
        var bits = new Bitfield(length);
        foreach (int i in set) bits.Set(i);
        return bits;
    }

    private static byte[] Journal()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"swarm-journal-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            var journal = new TaskJournal(dir, NullLogger.Instance);
            journal.Save(
            [
                ("t1", new TaskRequest { Source = "https://origin.example/file.iso", Output = "/tmp/file.iso", Headers = ["Authorization: Bearer x"], Peers = ["192.0.2.1:7400"] }),
                ("t2", new TaskRequest { Kind = TaskKind.Seed, Source = "oci://registry.example.com/demo/app:v1", Platform = "linux/amd64", Filters = ["a"], Digest = "sha256:" + new string('0', 64), NoBackToSource = true }),
            ]);
            return File.ReadAllBytes(journal.Path);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
