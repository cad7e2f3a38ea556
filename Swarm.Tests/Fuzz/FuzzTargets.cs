using System.Buffers;
using System.Collections;
using System.Net;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using MessagePack;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;
using Swarm.Core.Sources;
using Swarm.Core.Wire;
using Swarm.Node;
using Swarm.Node.Mirror;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// Every decoder that reads untrusted bytes, as a <see cref="FuzzTarget"/>: the transport's admission (preamble, proofs,
/// the encrypted channel's handshake) and its encrypted records, the wire's frame prefix and each message kind, DHT
/// datagrams (without and with a swarm key), manifests, signed and provider records, task pointers, the registry client's
/// answers (WWW-Authenticate, token, manifest, index), and the node's files (tasks.json, swarm.json, registries.json,
/// routing.bin).
/// </summary>
public static class FuzzTargets
{
    /// <summary>What <see cref="DhtCodec"/>, <see cref="RoutingTableFile"/> and the record readers treat as malformed input.</summary>
    private static readonly Type[] MalformedMessagePack =
        [typeof(MessagePackSerializationException), typeof(EndOfStreamException), typeof(OverflowException), typeof(InvalidDataException),
         typeof(ArgumentException), typeof(InvalidOperationException)];

    private static readonly string[] MessagePackTokens =
    [
        "\xc0", "\xc2", "\xc3", "\x90", "\x91", "\x92", "\x93", "\x95", "\x96", "\xdc\x00\x20", "\xdd\x00\x00\x01\x00",
        "\xc4\x00", "\xc4\x10", "\xc4\x20", "\xc4\x40", "\xc4\x04", "\xc5\x01\x00", "\xc6\x00\x00\x10\x00",
        "\xcc\xff", "\xcd\xff\xff", "\xce\xff\xff\xff\xff", "\xce\x7f\xff\xff\xff", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        "\xd0\x80", "\xd2\x80\x00\x00\x00", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "\xd9\x10", "\xa0", "\xa5swarm", "\xff", "\x7f", "\x01", "\x02",
    ];

    private static readonly string[] JsonTokens =
    [
        "{", "}", "[", "]", "\"", ":", ",", "null", "true", "false", "0", "-1", "1.5", "1e400", "-0", "2147483648", "9223372036854775808",
        "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\\ud800\"", "\\\"", "//", "/*", "*/",
        "\"mediaType\"", "\"manifests\"", "\"digest\"", "\"platform\"", "\"os\"", "\"architecture\"", "\"variant\"", "\"config\"", "\"layers\"",
        "\"size\"", "\"schemaVersion\"", "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"",
        "\"token\"", "\"access_token\"", "\"expires_in\"", "\"username\"", "\"password\"", "\"plainHttp\"",
        "\"listen\"", "\"bootstrap\"", "\"metrics\"", "\"mirror\"", "\"upstream\"", "\"quota\"", "\"task-ttl\"", "\"upload-rate\"",
        "\"high-watermark\"", "\"low-watermark\"", "\"max-connections\"", "\"log-level\"", "\"trusted-publishers\"", "\"registry-config\"",
        "\"Id\"", "\"Request\"", "\"Source\"", "\"Kind\"", "\"Headers\"", "\"Filters\"", "\"Peers\"", "\"Output\"", "\"OutputToken\"",
    ];

    private static readonly string[] ChallengeTokens =
    [
        "Bearer ", "Basic ", "realm=", "service=", "scope=", "\"", ",", "=", "\\", " ", "http://", "https://", "realm=\"http://a/t\"",
        "repository:x:pull", "?", "&", "#", "%", "\t", "Negotiate",
    ];

    private static readonly string[] TransportTokens =
    [
        "SWRM", "SWRM\x01\x00", "SWRM\x01\x01", "SWRM\x01\x02", "SWRM\x01\x03", "SWRM\x00", "SWRM\x02", "\x00", "\x01", "\x02", "\x03", "\x07", "\xff",
        "\x04", "\x00\x5b", "\x00\x20", "\x00\x1f", "\x01\x00", "\x01\x01", "\xff\xff",
        // The DER head of a P-256 SubjectPublicKeyInfo (the node keys the channel's handshake presents), up to the point's 0x04.
        "\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\x03\x42\x00\x04",
        "\x06\x05\x2b\x81\x04\x00\x22", // the P-384 curve's OID
        new string('\0', 32), new string('\xff', 32),
    ];

    private static readonly string[] RecordTokens =
    [
        "\x00\x00\x00\x00", "\x00\x00\x00\x01", "\x00\x00\x00\x10", "\x00\x00\xff\xff", "\x00\x01\x00\x00", "\x00\x01\x00\x01",
        "\x00\x08\x00\x00", "\x7f\xff\xff\xff", "\x80\x00\x00\x00", "\xff\xff\xff\xff", "\x00", "\x01", "\x07", "\x0f", "\x10", "\x3f", "\xff",
        new string('\0', 16), new string('\0', 20),
    ];

    public static IReadOnlyList<FuzzTarget> All { get; } = Build();

    public static FuzzTarget Get(string name) =>
        All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no fuzz target '{name}'; the targets: {string.Join(", ", All.Select(t => t.Name))}");

    private static FuzzTarget[] Build() =>
    [
        new("frame", "FrameCodec.TryReadFrame (prefix, per-kind limits) and the message decoders behind it", Frames,
            [typeof(WireProtocolException)], 16 * 1024, 48, 1 << 20, 16000, MessagePackTokens),
        Wire<Hello>("wire-hello", 8000),
        Wire<HelloProof>("wire-hello-proof", 4000),
        Wire<BitfieldMessage>("wire-bitfield", 4000),
        Wire<Have>("wire-have", 4000),
        Wire<Request>("wire-request", 4000),
        Wire<Cancel>("wire-cancel", 4000),
        Wire<Reject>("wire-reject", 4000),
        new("wire-block", "WireMessage.DecodeHeader<BlockHeader> (block frames)", BlockHeaderOf,
            [typeof(WireProtocolException)], 8 * 1024, 8, WireLimits.MaxFrame(MessageKind.Block) - 1, 4000, MessagePackTokens),
        Wire<Hashes>("wire-hashes", 6000),
        Wire<PeerList>("wire-peer-list", 8000),
        Wire<PieceHashes>("wire-piece-hashes", 8000),
        Wire<Seal>("wire-seal", 4000),
        new("dht", "DhtCodec.TryDecode without a swarm key (and a re-encode of what it accepts)", input => Dht(input, null),
            [], 32 * 1024, 64, 2048, 16000, MessagePackTokens),
        new("dht-keyed", "DhtCodec.TryDecode with a swarm key (first byte odd: the harness seals the rest with the right timestamp and MAC)", DhtKeyed,
            [], 32 * 1024, 64, 2048, 12000, MessagePackTokens),
        new("manifest", "Manifest.Decode (ordinary and live manifests)", ManifestOf,
            [typeof(InvalidDataException)], 64 * 1024, 8, 64 * 1024, 12000, MessagePackTokens)
        {
            // A live manifest keeps a hash, a signature and a flag per declared piece (97 bytes), and the harness works on a
            // copy: about 200 bytes per piece measured, 256 declared; 256 Ki pieces at most (64 MiB).
            DeclaredBytes = input => 256L * Math.Min(KnownFindings.LivePieces(input), Swarm.Core.Content.Manifest.MaxLivePieces) is var b and > 0 ? b : 0,
        },
        new("signed-record", "DhtCodec.ReadRecord, SignedRecord.Verify and TaskPointer.TryDecode of its value", SignedRecordOf,
            MalformedMessagePack, 32 * 1024, 16, 4096, 8000, MessagePackTokens),
        new("provider-record", "ProvidersResponse.Read: ProviderRecord, ProviderHoldings (and MayHave on what it accepts), contacts", ProvidersOf,
            MalformedMessagePack, 32 * 1024, 64, 2048, 12000, MessagePackTokens),
        new("task-pointer", "TaskPointer.TryDecode (a record's value)", input => TaskPointer.TryDecode(input, default, 1),
            [], 8 * 1024, 16, 4096, 8000, MessagePackTokens),
        new("registry-auth", "RegistryClient: a 401's WWW-Authenticate challenge (and ParseChallenge)", RegistryAuth,
            [typeof(RegistryException)], 96 * 1024, 64, 16 * 1024, 6000, ChallengeTokens),
        new("registry-token", "RegistryClient: the token service's JSON answer", RegistryToken,
            [typeof(RegistryException)], 96 * 1024, 32, 64 * 1024, 6000, JsonTokens),
        new("registry-manifest", "RegistryClient.GetManifestAsync: a manifest answer (body, Content-Type, Docker-Content-Digest)", RegistryManifestOf,
            [typeof(RegistryException)], 96 * 1024, 16, 64 * 1024, 6000, JsonTokens),
        new("oci-index", "Oci.DetectManifestType and OciPreheat's reading of an index (entries, platforms) and a manifest (config, layers)", OciIndex,
            [typeof(RegistryException)], 16 * 1024, 32, 64 * 1024, 12000, JsonTokens),
        new("tasks-json", "TaskJournal.Load (tasks.json)", TasksJson,
            [], 64 * 1024, 48, 64 * 1024, 6000, JsonTokens),
        new("swarm-json", "NodeConfig.Load (swarm.json)", SwarmJson,
            [typeof(ConfigException)], 256 * 1024, 48, 64 * 1024, 6000, JsonTokens),
        new("registries-json", "Registries.Load (registries.json)", RegistriesJson,
            [typeof(ConfigException)], 64 * 1024, 48, 64 * 1024, 6000, JsonTokens),
        new("routing-bin", "RoutingTableFile.Load (routing.bin)", RoutingBin,
            [], 32 * 1024, 48, 64 * 1024, 8000, MessagePackTokens),
        new("preamble", "PeerTransport.AcceptAsync / DialAsync against a scripted peer: the preamble, the swarm key's proofs, the encrypted channel's handshake",
            Preamble, [typeof(AdmissionException)], 48 * 1024, 32, 1024, 6000, TransportTokens),
        new("encrypted-record", "EncryptedStream's reader: records from hostile bytes, and (first byte odd) a stream sealed by its writer, then altered",
            EncryptedRecords, [typeof(WireProtocolException)], 16 * 1024, 8, 160 * 1024, 6000, RecordTokens)
        {
            // Sealed by the harness: the plaintext, the sealed stream (20 bytes a record more, in a growing MemoryStream),
            // a copy to alter, the list of record ends: at most 8 bytes per plaintext byte and 192 per record.
            DeclaredBytes = input => 8L * SealedLength(input) + 192L * SealedRecordCount(input),
        },
    ];

    // ---- wire ----

    private static FuzzTarget Wire<T>(string name, int mutations) where T : IWireMessage<T> =>
        new(name, $"WireMessage.Decode<{typeof(T).Name}> (contiguous and split in two segments: same outcome)", Both<T>,
            [typeof(WireProtocolException)], 8 * 1024, 48, WireLimits.MaxFrame(T.Kind) - 1, mutations, MessagePackTokens);

    /// <summary>Decodes the body whole and cut in two (as reads from a socket arrive); both must agree.</summary>
    private static void Both<T>(byte[] input) where T : IWireMessage<T>
    {
        WireProtocolException? whole = null, split = null;
        try { WireMessage.Decode<T>(new ReadOnlySequence<byte>(input)); }
        catch (WireProtocolException e) { whole = e; }
        try { WireMessage.Decode<T>(FuzzInputs.Split(input, input.Length / 3)); }
        catch (WireProtocolException e) { split = e; }
        if ((whole == null) != (split == null))
            throw new FuzzCheckException($"{typeof(T).Name}: whole body {(whole == null ? "accepted" : "refused")}, split body {(split == null ? "accepted" : "refused: " + split.Message)}");
        if (whole != null) ExceptionDispatchInfo.Throw(whole);
    }

    private static void BlockHeaderOf(byte[] input)
    {
        var header = WireMessage.DecodeHeader<BlockHeader>(new ReadOnlySequence<byte>(input), out long consumed);
        if (consumed < 0 || consumed > input.Length || header.Piece < 0 || header.Offset < 0) throw new FuzzCheckException($"block header consumed {consumed} of {input.Length}");
    }

    /// <summary>
    /// Byte 0: bit 0 asks for the handshake's Hello-only reading; byte 1: where the stream is cut in two. The rest is a byte
    /// stream read frame by frame as a connection does, each frame's body going to its kind's decoder.
    /// </summary>
    private static void Frames(byte[] input)
    {
        if (input.Length < 2) return;
        MessageKind? only = (input[0] & 1) != 0 ? MessageKind.Hello : null;
        var data = input.AsSpan(2).ToArray();
        var buffer = FuzzInputs.Split(data, data.Length * input[1] / 255);
        for (int frames = 0; frames < 1024; frames++)
        {
            long before = buffer.Length;
            if (!FrameCodec.TryReadFrame(ref buffer, out var frame, only)) return;
            if (buffer.Length >= before) throw new FuzzCheckException("TryReadFrame returned a frame without consuming bytes");
            if (frame.Body.Length > WireLimits.MaxFrame(frame.Kind) && frame.Kind != MessageKind.KeepAlive)
                throw new FuzzCheckException($"{frame.Kind} body of {frame.Body.Length} bytes passed its limit");
            DecodeBody(frame);
        }
    }

    private static void DecodeBody(Frame frame)
    {
        switch (frame.Kind)
        {
            case MessageKind.Hello: WireMessage.Decode<Hello>(frame.Body); break;
            case MessageKind.HelloProof: WireMessage.Decode<HelloProof>(frame.Body); break;
            case MessageKind.Bitfield: WireMessage.Decode<BitfieldMessage>(frame.Body); break;
            case MessageKind.Have: WireMessage.Decode<Have>(frame.Body); break;
            case MessageKind.Request: WireMessage.Decode<Request>(frame.Body); break;
            case MessageKind.Cancel: WireMessage.Decode<Cancel>(frame.Body); break;
            case MessageKind.Reject: WireMessage.Decode<Reject>(frame.Body); break;
            case MessageKind.Block: WireMessage.DecodeHeader<BlockHeader>(frame.Body, out _); break;
            case MessageKind.Hashes: WireMessage.Decode<Hashes>(frame.Body); break;
            case MessageKind.PeerList: WireMessage.Decode<PeerList>(frame.Body); break;
            case MessageKind.PieceHashes: WireMessage.Decode<PieceHashes>(frame.Body); break;
            case MessageKind.Seal: WireMessage.Decode<Seal>(frame.Body); break;
            default: break; // keep-alive and the kinds without a body
        }
    }

    // ---- DHT ----

    internal static readonly byte[] SwarmKey = [.. Enumerable.Range(0, 32).Select(i => (byte)(0x5a ^ i))];

    /// <summary>One authenticator for the whole run, as a node has one: its replay cache is bounded, so it may stay.</summary>
    internal static readonly DatagramAuthenticator Authenticator = new(SwarmKey, TimeSpan.FromSeconds(60), 65_536, TimeProvider.System);

    private static void Dht(byte[] datagram, DatagramAuthenticator? authenticator)
    {
        var result = DhtCodec.TryDecode(datagram, authenticator, out var header, out var body);
        if (result != DecodeResult.Ok) return;
        if (body == null || body.Kind != header.Kind) throw new FuzzCheckException("Ok without a body of the header's kind");
        // What a node accepted it may send on (records, contacts): encoding it again must work and decode the same way
        // (unauthenticated: the authenticator's replay cache would rightly refuse a second datagram of the same bytes).
        byte[] again = DhtCodec.Encode(header, body, null);
        if (DhtCodec.TryDecode(again, null, out var header2, out var body2) != DecodeResult.Ok || header2 != header || body2?.Kind != body.Kind)
            throw new FuzzCheckException($"{header.Kind}: the re-encoded datagram does not decode the same");
    }

    private static void DhtKeyed(byte[] input)
    {
        if (input.Length == 0) return;
        byte[] payload = input[1..];
        if ((input[0] & 1) == 0)
        {
            Dht(payload, Authenticator);
            return;
        }
        // The harness seals the bytes itself (timestamp now, the right MAC), so the parser behind the authenticator is reached.
        Dht(Authenticator.Seal(payload), Authenticator);
    }

    private static void ProvidersOf(byte[] input)
    {
        var reader = new MessagePackReader(input);
        var response = ProvidersResponse.Read(ref reader);
        foreach (var p in response.Providers)
        {
            var h = p.Holdings;
            if (h.VerifiedPieces < 0 || h.VerifiedPieces > h.TotalPieces || h.PiecesPerBit < 1) throw new FuzzCheckException($"accepted holdings {h}");
            int step = Math.Max(1, h.TotalPieces / 512);
            for (int piece = 0; piece < h.TotalPieces; piece += step) h.MayHave(piece);
            _ = h.ToString();
        }
    }

    private static void SignedRecordOf(byte[] input)
    {
        var reader = new MessagePackReader(input);
        var record = DhtCodec.ReadRecord(ref reader);
        record.Verify();
        TaskPointer.TryDecode(record);
        _ = record.Expires;
        _ = record.ToString();
    }

    // ---- transport (after the DHT's swarm key: static fields start in this order) ----

    private static readonly NodeKey OwnKey = NodeKey.Generate();

    /// <summary>The key the harness signs the scripted peer's channel handshake with (byte 0, bit 4).</summary>
    internal static readonly NodeKey PeerKey = NodeKey.Generate();

    internal static readonly IPEndPoint PeerEndPoint = new(IPAddress.Parse("192.0.2.99"), 7400);

    /// <summary>This side's security, by <c>keyed | encrypted &lt;&lt; 1</c> (the swarm key is the DHT targets' one).</summary>
    internal static readonly TransportSecurity[] Securities =
        [.. Enumerable.Range(0, 4).Select(i => new TransportSecurity(OwnKey, (i & 1) != 0 ? Swarm.Core.Identity.SwarmKey.FromBytes(SwarmKey) : null, (i & 2) != 0))];

    /// <summary>
    /// Admission as a node runs it on a new connection, the rest of the input being what the other side sends. Byte 0: bit 0
    /// this side dials (the rest is an acceptor's reply, proof and channel handshake; else it accepts and the rest is a
    /// dialer's preamble, proof and handshake); bit 1 this side has the swarm key; bit 2 it encrypts; bit 3 the harness
    /// writes the right proof over both nonces into the rest (38..70 of a reply, 38..70 after a dialer's preamble), as only
    /// a member could; bit 4 the harness signs the channel handshake in the rest (its node key and signature after the
    /// 65-byte ephemeral key, over the nonces); bit 5 the peer's bytes arrive one a read.
    /// </summary>
    private static void Preamble(byte[] input)
    {
        if (input.Length == 0) return;
        byte mode = input[0];
        bool dial = (mode & 1) != 0, prove = (mode & 8) != 0, sign = (mode & 16) != 0;
        var security = Securities[(mode >> 1) & 3];
        var peer = new ScriptedStream(input[1..], (mode & 32) != 0 ? 1 : int.MaxValue);
        bool proved = false, signed = false;
        peer.BeforeRead = s => PlayPeer(s, dial, security, prove && !proved, sign && !signed, ref proved, ref signed);
        var admitted = (dial
            ? PeerTransport.DialAsync(peer, PeerEndPoint, security, CancellationToken.None)
            : PeerTransport.AcceptAsync(peer, PeerEndPoint, security, CancellationToken.None)).GetAwaiter().GetResult();
        using var stream = admitted.Stream;

        // Admitted: only with what a member (and, encrypted, the key's holder) can send, and pinned to that key.
        if (security.AdmissionKey != null && !proved) throw new FuzzCheckException("admitted to the private swarm without the harness's proof");
        if (security.Encrypt != (stream is EncryptedStream)) throw new FuzzCheckException($"admitted as {stream.GetType().Name} with encryption {(security.Encrypt ? "on" : "off")}");
        if (security.Encrypt && (!signed || admitted.PeerKey is not { } peerKey || !peerKey.AsSpan().SequenceEqual(PeerKey.PublicKey)))
            throw new FuzzCheckException("an encrypted channel with a key the harness did not sign with");
        if (!security.Encrypt && admitted.PeerKey != null) throw new FuzzCheckException("a peer key without an encrypted channel");
        // What this side sent: its preamble (magic, version, its flags) and, with the key, its proof over both nonces.
        var written = peer.Written;
        const int n = PeerTransport.NonceLength, p = PeerTransport.DialerPreambleLength;
        if (written.Length < p || !written[..4].SequenceEqual("SWRM"u8) || written[5] != security.Flags)
            throw new FuzzCheckException($"this side sent the preamble {Convert.ToHexString(written[..Math.Min(written.Length, p)])}");
        if (security.AdmissionKey is { } key)
        {
            byte[] nonces = dial ? PeerTransport.Nonces(written.Slice(6, n), peer.Script.AsSpan(6, n)) : PeerTransport.Nonces(peer.Script.AsSpan(6, n), written.Slice(6, n));
            if (written.Length < p + PeerTransport.MacLength || !written.Slice(p, PeerTransport.MacLength).SequenceEqual(PeerTransport.Mac(key, dial ? 'D' : 'A', nonces)))
                throw new FuzzCheckException("this side's admission proof is not the HMAC over both nonces");
        }
    }

    /// <summary>
    /// What only a real peer could send, written into the script before this side reads it: once this side sent its
    /// preamble (its nonce), the proof over both nonces and the channel handshake's signature over them.
    /// </summary>
    private static void PlayPeer(ScriptedStream s, bool dial, TransportSecurity security, bool prove, bool sign, ref bool proved, ref bool signed)
    {
        const int n = PeerTransport.NonceLength, p = PeerTransport.DialerPreambleLength;
        if (!prove && !sign) return;
        if (s.Written.Length < p || s.Script.Length < p) return;
        byte[] nonces = dial ? PeerTransport.Nonces(s.Written.Slice(6, n), s.Script.AsSpan(6, n)) : PeerTransport.Nonces(s.Script.AsSpan(6, n), s.Written.Slice(6, n));
        char role = dial ? 'A' : 'D'; // the peer's
        if (prove && security.AdmissionKey is { } key)
        {
            s.Patch(p, PeerTransport.Mac(key, role, nonces));
            proved = true;
        }
        // The channel's handshake follows the acceptor's reply (70 bytes, its proof or zeros) or the dialer's preamble and proof.
        int at = dial ? PeerTransport.AcceptorPreambleLength : p + (security.AdmissionKey != null ? PeerTransport.MacLength : 0);
        const int ephemeral = 65;
        if (sign && security.Encrypt && s.Script.Length >= at + ephemeral)
        {
            byte[] publicKey = PeerKey.PublicKey;
            byte[] signature = PeerKey.Sign(PeerTransport.Signed((byte)role, nonces, s.Script[at..(at + ephemeral)]));
            s.Patch(at + ephemeral, [(byte)(publicKey.Length >> 8), (byte)publicKey.Length, .. publicKey, .. signature]);
            signed = true;
        }
    }

    // ---- encrypted records ----

    /// <summary>The key of the records this side reads (what the harness seals with), and the other direction's.</summary>
    internal static readonly byte[] RecordKey = [.. Enumerable.Range(0, 16).Select(i => (byte)(0xc3 ^ i))];
    internal static readonly byte[] ReplyKey = [.. Enumerable.Range(0, 16).Select(i => (byte)(0x3c ^ i))];

    private static readonly int[] ReadSizes = [1, 7, 100, 4096, 16 * 1024, EncryptedStream.MaxRecord, EncryptedStream.MaxRecord + 20, 256 * 1024];
    private static readonly int[] ChunkSizes = [int.MaxValue, 1, 5, 4099];
    private static readonly int[] RecordSizes = [1, 2, 16, 255, 4096, 16 * 1024, EncryptedStream.MaxRecord - 1, EncryptedStream.MaxRecord];
    private static readonly int[] Repeats = [1, 1, 1, 1, 2, 16, 256, 4096];
    /// <summary>mode, shape, repeat, position (3 bytes), mask; then the plaintext.</summary>
    internal const int SealedHeader = 7;
    /// <summary>Plaintext sealed at most: past the reader's 512 KiB read-ahead, so it moves a partial record to the front.</summary>
    private const int MaxSealed = 640 * 1024;
    private const int MaxSealedRecords = 4096;

    /// <summary>The plaintext bytes the harness seals for this input (0 when it reads the input as ciphertext).</summary>
    internal static long SealedLength(byte[] input)
    {
        if (input.Length < SealedHeader || (input[0] & 1) == 0) return 0;
        return Math.Min(Math.Min((long)(input.Length - SealedHeader) * Repeats[input[2] & 7], MaxSealed), (long)RecordSizes[input[1] & 7] * MaxSealedRecords);
    }

    /// <summary>The records the harness seals for this input: one per write, two when a write is in two segments.</summary>
    internal static long SealedRecordCount(byte[] input)
    {
        long length = SealedLength(input);
        int size = RecordSizes[input.Length > 1 ? input[1] & 7 : 0];
        return (length + size - 1) / size * ((input.Length > 1 && (input[1] & 8) != 0) ? 2 : 1);
    }

    private static T Wait<T>(ValueTask<T> task) => task.IsCompleted ? task.Result : task.AsTask().GetAwaiter().GetResult();

    private static void Wait(ValueTask task)
    {
        if (task.IsCompleted) task.GetAwaiter().GetResult();
        else task.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// Byte 0: bit 0 the harness seals the plaintext that follows the header with the code's own writer (else the rest is
    /// the ciphertext stream, read as it comes); bits 1-3 the reader's buffer size; bits 4-5 how much one read of the socket
    /// gives (all there is, 1, 5 or 4099 bytes). Sealed: byte 1 bits 0-2 the record size, bit 3 each write in two segments,
    /// bits 4-5 what is done to the sealed stream (0 one byte XORed with byte 6, none when 0; 1 cut at the position; 2 its
    /// first record sent again at the end; 3 its first record dropped); byte 2 bits 0-2 how often the plaintext is
    /// repeated; bytes 3-5 a position in the stream. What the reader gives must be a prefix of what was sealed, all of it
    /// when the stream is intact, and nothing of an altered record; an altered stream must be refused.
    /// </summary>
    private static void EncryptedRecords(byte[] input)
    {
        if (input.Length == 0) return;
        byte mode = input[0];
        int bufferSize = ReadSizes[(mode >> 1) & 7], chunk = ChunkSizes[(mode >> 4) & 3];
        byte[] buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
        try
        {
            if ((mode & 1) == 0)
            {
                using var raw = new EncryptedStream(new ScriptedStream(input, chunk, start: 1), ReplyKey, RecordKey);
                long plain = 0;
                int got;
                while ((got = Wait(raw.ReadAsync(buffer.AsMemory(0, bufferSize)))) > 0) plain += got;
                if (plain > Math.Max(0, input.Length - 1 - 20)) throw new FuzzCheckException($"{plain} bytes of plaintext out of {input.Length - 1} of ciphertext");
                return;
            }
            if (input.Length < SealedHeader) return;
            SealedRecords(input, buffer.AsMemory(0, bufferSize), chunk);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void SealedRecords(byte[] input, Memory<byte> buffer, int chunk)
    {
        byte shape = input[1];
        int recordSize = RecordSizes[shape & 7], alteration = (shape >> 4) & 3;
        int position = (input[3] << 16) | (input[4] << 8) | input[5];
        byte mask = input[6];
        var piece = input.AsSpan(SealedHeader);
        byte[] plain = new byte[SealedLength(input)];
        for (int i = 0; i < plain.Length; i += piece.Length) piece[..Math.Min(piece.Length, plain.Length - i)].CopyTo(plain.AsSpan(i));

        var sealedStream = new ScriptedStream([]);
        using (var writer = new EncryptedStream(sealedStream, RecordKey, ReplyKey))
        {
            for (int at = 0; at < plain.Length; at += recordSize)
            {
                var part = plain.AsMemory(at, Math.Min(recordSize, plain.Length - at));
                Wait(writer.WriteAsync((shape & 8) != 0 ? FuzzInputs.Split(part, part.Length / 2) : new ReadOnlySequence<byte>(part)));
            }
        }
        byte[] wire = sealedStream.Written.ToArray();
        // The records as the writer framed them: where each ends in the stream, and the plaintext up to its end.
        var ends = new List<(int Wire, int Plain)>();
        for (int at = 0, total = 0; at < wire.Length;)
        {
            int length = at + 4 <= wire.Length ? (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(wire.AsSpan(at)) : -1;
            if (length is < 1 or > EncryptedStream.MaxRecord || at + 4 + length + 16 > wire.Length)
                throw new FuzzCheckException($"the writer framed a record of {length} bytes at {at} of {wire.Length}");
            at += 4 + length + 16;
            total += length;
            ends.Add((at, total));
        }
        int framed = ends.Count > 0 ? ends[^1].Plain : 0;
        if (framed != plain.Length) throw new FuzzCheckException($"the writer sealed {framed} of {plain.Length} bytes");

        // The alteration: the plaintext the reader may give before it (that of the records wholly before it), and whether it must refuse.
        bool altered = false;
        int deliverable = plain.Length;
        int IntactBefore(int offset) => ends.LastOrDefault(e => e.Wire <= offset).Plain;
        if (wire.Length > 0)
        {
            switch (alteration)
            {
                case 0 when mask != 0:
                    int flipped = position % wire.Length;
                    wire[flipped] ^= mask;
                    (altered, deliverable) = (true, IntactBefore(flipped));
                    break;
                case 1:
                    int keep = position % (wire.Length + 1);
                    wire = wire[..keep];
                    (altered, deliverable) = (keep != 0 && ends.All(e => e.Wire != keep), IntactBefore(keep));
                    break;
                case 2:
                    wire = [.. wire, .. wire.AsSpan(0, ends[0].Wire)];
                    altered = true;
                    break;
                case 3:
                    wire = wire[ends[0].Wire..];
                    (altered, deliverable) = (ends.Count > 1, 0);
                    break;
            }
        }

        using var reader = new EncryptedStream(new ScriptedStream(wire, chunk), ReplyKey, RecordKey);
        int read = 0;
        WireProtocolException? refused = null;
        try
        {
            int got;
            while ((got = Wait(reader.ReadAsync(buffer))) > 0)
            {
                if (got > buffer.Length || read + got > deliverable || !buffer.Span[..got].SequenceEqual(plain.AsSpan(read, got)))
                    throw new FuzzCheckException($"the reader gave {got} bytes at {read} that were not sealed there ({deliverable} deliverable, stream {(altered ? "altered" : "intact")})");
                read += got;
            }
        }
        catch (WireProtocolException e)
        {
            refused = e;
        }
        if (refused == null && altered) throw new FuzzCheckException($"an altered stream (alteration {alteration}) was read to its end ({read} bytes)");
        if (refused != null && !altered) throw new FuzzCheckException($"an intact stream was refused after {read} of {plain.Length} bytes: {refused.Message}");
        if (refused == null && read != deliverable) throw new FuzzCheckException($"the reader gave {read} of {deliverable} bytes and ended");
        if (refused != null) ExceptionDispatchInfo.Throw(refused);
    }

    // ---- content ----

    private static void ManifestOf(byte[] input)
    {
        var manifest = Manifest.Decode(input);
        if (manifest.VerifySignature(new byte[EcdsaSignature.Length])) throw new FuzzCheckException("a zero signature verified");
        if (Manifest.Decode(manifest.Encoded).Id != manifest.Id) throw new FuzzCheckException("the manifest's encoding does not decode to the same id");
    }

    // ---- registry ----

    private const string Registry = "registry.fuzz.invalid";

    private static void RegistryAuth(byte[] input)
    {
        if (input.Length == 0) return;
        string challenge = System.Text.Encoding.Latin1.GetString(input, 1, input.Length - 1);
        RegistryClient.ParseChallenge(challenge);
        using var handler = new FakeRegistryHandler(request => FakeRegistryHandler.IsRegistry(request)
            ? request.Headers.Contains("Authorization") ? FakeRegistryHandler.Manifest() : FakeRegistryHandler.Unauthorized(challenge)
            : FakeRegistryHandler.Json("{\"token\":\"t0k3n\",\"expires_in\":300}"));
        using var client = new RegistryClient(Registry, (input[0] & 1) != 0 ? new RegistryCredentials("user", "secret") : null, plainHttp: true, handler: handler);
        client.GetManifestAsync("demo/app", "latest", CancellationToken.None).GetAwaiter().GetResult();
    }

    private static void RegistryToken(byte[] input)
    {
        using var handler = new FakeRegistryHandler(request => FakeRegistryHandler.IsRegistry(request)
            ? request.Headers.Contains("Authorization") ? FakeRegistryHandler.Manifest() : FakeRegistryHandler.Unauthorized("Bearer realm=\"http://auth.fuzz.invalid/token\",service=\"fuzz\"")
            : FakeRegistryHandler.Bytes(input, "application/json"));
        using var client = new RegistryClient(Registry, null, plainHttp: true, handler: handler);
        client.GetManifestAsync("demo/app", "latest", CancellationToken.None).GetAwaiter().GetResult();
    }

    private static readonly string?[] ContentTypes =
        [null, "application/json", "text/plain", Oci.ImageManifest, Oci.ImageIndex, Oci.DockerManifest, Oci.DockerManifestList, "application/octet-stream"];

    /// <summary>Byte 0: bits 0-2 the Content-Type, bit 3 a right Docker-Content-Digest, bit 4 a wrong one, bit 5 asked for by digest, bit 6 no Content-Length. The rest is the body.</summary>
    private static void RegistryManifestOf(byte[] input)
    {
        if (input.Length == 0) return;
        byte flags = input[0];
        byte[] body = input[1..];
        string digest = Oci.Sha256Digest(body);
        using var handler = new FakeRegistryHandler(_ =>
        {
            var response = FakeRegistryHandler.Bytes(body, ContentTypes[flags & 7], withLength: (flags & 0x40) == 0);
            if ((flags & 0x08) != 0) response.Headers.TryAddWithoutValidation("Docker-Content-Digest", digest);
            if ((flags & 0x10) != 0) response.Headers.TryAddWithoutValidation("Docker-Content-Digest", "sha256:" + new string('0', 64));
            return response;
        });
        using var client = new RegistryClient(Registry, null, plainHttp: true, handler: handler);
        var manifest = client.GetManifestAsync("demo/app", (flags & 0x20) != 0 ? digest : "latest", CancellationToken.None).GetAwaiter().GetResult();
        if (manifest.Digest != digest || !manifest.Body.AsSpan().SequenceEqual(body)) throw new FuzzCheckException("the manifest's digest or body changed");
    }

    private static readonly Func<byte[], IEnumerable<(string, string?, string?, string?)>> IndexEntries =
        typeof(OciPreheat).GetMethod("IndexEntries", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .CreateDelegate<Func<byte[], IEnumerable<(string, string?, string?, string?)>>>();

    private static readonly Func<byte[], List<(string, long)>> Blobs =
        typeof(OciPreheat).GetMethod("Blobs", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .CreateDelegate<Func<byte[], List<(string, long)>>>();

    /// <summary>A manifest body as seed oci:// reads it: its type, an index's entries (if it is one), a manifest's blobs.</summary>
    private static void OciIndex(byte[] body)
    {
        Oci.DetectManifestType(body);
        RegistryException? refused = null;
        try
        {
            foreach (var entry in IndexEntries(body)) _ = entry;
        }
        catch (RegistryException e)
        {
            refused = e;
        }
        try
        {
            Blobs(body);
        }
        catch (RegistryException e)
        {
            refused ??= e;
        }
        if (refused != null) ExceptionDispatchInfo.Throw(refused);
    }

    // ---- files of the data directory ----

    private static void TasksJson(byte[] input)
    {
        FuzzInputs.WriteScratch(TaskJournal.FileName, input);
        new TaskJournal(FuzzInputs.Scratch, NullLogger.Instance).Load();
    }

    private static readonly Dictionary<string, string?> NoFlags = [];

    private static void SwarmJson(byte[] input)
    {
        FuzzInputs.WriteScratch(NodeConfig.FileName, input);
        NodeConfig.Load(FuzzInputs.Scratch, NoFlags, new Hashtable());
    }

    private static void RegistriesJson(byte[] input)
    {
        using var registries = Registries.Load(FuzzInputs.WriteScratch("registries.json", input));
    }

    private static void RoutingBin(byte[] input)
    {
        foreach (var contact in RoutingTableFile.Load(FuzzInputs.WriteScratch("routing.bin", input)))
            if (contact.EndPoint.Port is < 1 or > 65535) throw new FuzzCheckException($"routing.bin gave contact {contact}");
    }
}
