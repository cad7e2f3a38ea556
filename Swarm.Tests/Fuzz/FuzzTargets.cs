using System.Buffers;
using System.Collections;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using MessagePack;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Sources;
using Swarm.Core.Wire;
using Swarm.Node;
using Swarm.Node.Mirror;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// Every decoder that reads untrusted bytes, as a <see cref="FuzzTarget"/>: the wire's frame prefix and each message kind,
/// DHT datagrams (without and with a swarm key), manifests, signed and provider records, task pointers, the registry
/// client's answers (WWW-Authenticate, token, manifest, index), and the node's files (tasks.json, swarm.json,
/// registries.json, routing.bin).
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
