using System.Buffers;
using System.Net;
using MessagePack;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>Message kinds. A response kind is its request kind with bit 0x40 set.</summary>
internal enum DhtMessageKind
{
    Ping = 1,
    FindNode = 2,
    GetProviders = 3,
    AddProvider = 4,
    Get = 5,
    Put = 6,
    Pong = 0x41,
    Nodes = 0x42,
    Providers = 0x43,
    AddProviderResult = 0x44,
    Records = 0x45,
    PutResult = 0x46,
}

internal enum DhtStatus
{
    Ok = 0,
    BadToken = 1,
    BadSignature = 2,
    StaleSequence = 3,
    StoreFull = 4,
    Invalid = 5,
}

/// <summary>Datagram size limits, checked before anything is parsed.</summary>
internal static class DhtLimits
{
    public const int ProtocolVersion = 1;
    /// <summary>Largest datagram sent or accepted (fits a 1500-byte MTU with IPv6 and UDP headers).</summary>
    public const int MaxDatagramLength = 1400;
    public const int TokenLength = 16;
    /// <summary>With a swarm key, every datagram ends in an 8-byte timestamp and a 16-byte MAC (<see cref="DatagramAuthenticator"/>).</summary>
    public const int TimestampLength = 8;
    public const int MacLength = 16;
    public const int AuthenticatorLength = TimestampLength + MacLength;
    /// <summary>Contacts, providers and records a response may list (any more are malformed).</summary>
    public const int MaxContacts = 32;
    public const int MaxProviders = 32;
    public const int MaxRecords = 8;
    /// <summary>Room kept for the envelope (array header, version, kind, transaction id, sender id, body header).</summary>
    public const int EnvelopeReserve = 64;

    /// <summary>Largest message of a kind, without the swarm-key authenticator; 0 for an unknown kind.</summary>
    public static int MaxLength(DhtMessageKind kind) => kind switch
    {
        DhtMessageKind.Ping or DhtMessageKind.AddProviderResult or DhtMessageKind.PutResult => 96,
        DhtMessageKind.FindNode or DhtMessageKind.GetProviders or DhtMessageKind.Pong => 128,
        DhtMessageKind.Get => 160,
        DhtMessageKind.AddProvider => 400,
        DhtMessageKind.Put or DhtMessageKind.Nodes or DhtMessageKind.Providers or DhtMessageKind.Records => MaxDatagramLength - AuthenticatorLength,
        _ => 0,
    };

    public static bool IsResponse(DhtMessageKind kind) => ((int)kind & 0x40) != 0;
    public static DhtMessageKind ResponseTo(DhtMessageKind request) => (DhtMessageKind)((int)request | 0x40);

    // Upper bounds of encoded sizes, used to fill a response up to the datagram budget.
    public static int ContactSize(Contact c) => 1 + 2 + Hash256.Size + AddressSize(c.EndPoint.Address) + 3;
    public static int ProviderSize(ProviderRecord p) => 1 + 2 + Hash256.Size + AddressSize(p.EndPoint.Address) + 3 + 5 + 5 + (p.Holdings.Bitmap.IsEmpty ? 1 : 2 + p.Holdings.Bitmap.Length) + 5;
    public static int RecordSize(SignedRecord r) => 1 + 2 + Hash256.Size + 3 + r.Value.Length + 9 + 9 + 2 + r.PublicKey.Length + 2 + r.Signature.Length;
    public static int AddressSize(IPAddress a) => 2 + (DhtAddress.Normalize(a).AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 4 : 16);
}

internal readonly record struct DhtHeader(DhtMessageKind Kind, ulong TransactionId, Hash256 Sender);

internal interface IDhtBody
{
    DhtMessageKind Kind { get; }
    void Write(ref MessagePackWriter writer);
}

internal sealed record PingRequest : IDhtBody
{
    public static readonly PingRequest Instance = new();
    public DhtMessageKind Kind => DhtMessageKind.Ping;
    public void Write(ref MessagePackWriter writer) => writer.WriteArrayHeader(0);
    public static PingRequest Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 0);
        return Instance;
    }
}

/// <summary>Answers a ping, telling the requester the address its datagram came from.</summary>
internal sealed record PongResponse(IPEndPoint Observed) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.Pong;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        DhtCodec.WriteAddress(ref writer, Observed.Address);
        writer.Write(Observed.Port);
    }
    public static PongResponse Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 2);
        var address = DhtCodec.ReadAddress(ref reader);
        return new PongResponse(new IPEndPoint(address, DhtCodec.ReadPort(ref reader)));
    }
}

internal sealed record FindNodeRequest(Hash256 Target) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.FindNode;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        DhtCodec.WriteHash(ref writer, Target);
    }
    public static FindNodeRequest Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 1);
        return new FindNodeRequest(DhtCodec.ReadHash(ref reader));
    }
}

internal sealed record NodesResponse(IReadOnlyList<Contact> Contacts) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.Nodes;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        DhtCodec.WriteContacts(ref writer, Contacts);
    }
    public static NodesResponse Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 1);
        return new NodesResponse(DhtCodec.ReadContacts(ref reader));
    }
}

internal sealed record GetProvidersRequest(Hash256 Key) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.GetProviders;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        DhtCodec.WriteHash(ref writer, Key);
    }
    public static GetProvidersRequest Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 1);
        return new GetProvidersRequest(DhtCodec.ReadHash(ref reader));
    }
}

/// <summary>Providers the node stores for the key, nodes closer to it, and a token that lets the requester's address announce.</summary>
internal sealed record ProvidersResponse(byte[] Token, IReadOnlyList<ProviderRecord> Providers, IReadOnlyList<Contact> Contacts) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.Providers;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(3);
        writer.Write(Token);
        writer.WriteArrayHeader(Providers.Count);
        foreach (var p in Providers)
        {
            writer.WriteArrayHeader(5);
            DhtCodec.WriteHash(ref writer, p.NodeId);
            DhtCodec.WriteAddress(ref writer, p.EndPoint.Address);
            writer.Write(p.EndPoint.Port);
            DhtCodec.WriteHoldings(ref writer, p.Holdings);
            writer.Write((int)Math.Clamp(p.Age.TotalSeconds, 0, int.MaxValue));
        }
        DhtCodec.WriteContacts(ref writer, Contacts);
    }
    public static ProvidersResponse Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 3);
        var token = DhtCodec.ReadToken(ref reader);
        int n = reader.ReadArrayHeader();
        if (n > DhtLimits.MaxProviders) throw new InvalidDataException("too many providers");
        var providers = new List<ProviderRecord>(n);
        for (int i = 0; i < n; i++)
        {
            DhtCodec.ExpectFields(ref reader, 5);
            var id = DhtCodec.ReadHash(ref reader);
            var address = DhtCodec.ReadAddress(ref reader);
            int port = DhtCodec.ReadPort(ref reader);
            var holdings = DhtCodec.ReadHoldings(ref reader);
            int age = reader.ReadInt32();
            if (age < 0) throw new InvalidDataException("negative age");
            providers.Add(new ProviderRecord(id, new IPEndPoint(address, port), holdings, TimeSpan.FromSeconds(age)));
        }
        return new ProvidersResponse(token, providers, DhtCodec.ReadContacts(ref reader));
    }
}

/// <summary>Announces the sender (at the datagram's source address and <see cref="TcpPort"/>) as a provider of <see cref="Key"/>.</summary>
internal sealed record AddProviderRequest(Hash256 Key, byte[] Token, int TcpPort, ProviderHoldings Holdings) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.AddProvider;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(4);
        DhtCodec.WriteHash(ref writer, Key);
        writer.Write(Token);
        writer.Write(TcpPort);
        DhtCodec.WriteHoldings(ref writer, Holdings);
    }
    public static AddProviderRequest Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 4);
        var key = DhtCodec.ReadHash(ref reader);
        var token = DhtCodec.ReadToken(ref reader);
        int port = DhtCodec.ReadPort(ref reader);
        return new AddProviderRequest(key, token, port, DhtCodec.ReadHoldings(ref reader));
    }
}

/// <summary>The answer to AddProvider or Put.</summary>
internal sealed record StatusResponse(DhtMessageKind Kind, DhtStatus Status) : IDhtBody
{
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        writer.Write((int)Status);
    }
    public static StatusResponse Read(DhtMessageKind kind, ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 1);
        int status = reader.ReadInt32();
        if (status is < 0 or > (int)DhtStatus.Invalid) throw new InvalidDataException("unknown status");
        return new StatusResponse(kind, (DhtStatus)status);
    }
}

internal sealed record GetRequest(Hash256 Key, Hash256? Publisher) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.Get;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        DhtCodec.WriteHash(ref writer, Key);
        if (Publisher is { } p) DhtCodec.WriteHash(ref writer, p);
        else writer.WriteNil();
    }
    public static GetRequest Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 2);
        var key = DhtCodec.ReadHash(ref reader);
        Hash256? publisher = reader.TryReadNil() ? null : DhtCodec.ReadHash(ref reader);
        return new GetRequest(key, publisher);
    }
}

internal sealed record RecordsResponse(byte[] Token, IReadOnlyList<SignedRecord> Records, IReadOnlyList<Contact> Contacts) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.Records;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(3);
        writer.Write(Token);
        writer.WriteArrayHeader(Records.Count);
        foreach (var r in Records) DhtCodec.WriteRecord(ref writer, r);
        DhtCodec.WriteContacts(ref writer, Contacts);
    }
    public static RecordsResponse Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 3);
        var token = DhtCodec.ReadToken(ref reader);
        int n = reader.ReadArrayHeader();
        if (n > DhtLimits.MaxRecords) throw new InvalidDataException("too many records");
        var records = new List<SignedRecord>(n);
        for (int i = 0; i < n; i++) records.Add(DhtCodec.ReadRecord(ref reader));
        return new RecordsResponse(token, records, DhtCodec.ReadContacts(ref reader));
    }
}

internal sealed record PutRequest(byte[] Token, SignedRecord Record) : IDhtBody
{
    public DhtMessageKind Kind => DhtMessageKind.Put;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        writer.Write(Token);
        DhtCodec.WriteRecord(ref writer, Record);
    }
    public static PutRequest Read(ref MessagePackReader reader)
    {
        DhtCodec.ExpectFields(ref reader, 2);
        var token = DhtCodec.ReadToken(ref reader);
        return new PutRequest(token, DhtCodec.ReadRecord(ref reader));
    }
}

internal enum DecodeResult
{
    Ok,
    Oversized,
    Malformed,
    /// <summary>A swarm key is set and the authenticator is missing or its MAC is wrong.</summary>
    BadMac,
    /// <summary>Authentic, but stamped outside the replay window.</summary>
    OutsideWindow,
    /// <summary>Authentic, but accepted before.</summary>
    Replayed,
}

/// <summary>
/// The datagram format: a MessagePack array <c>[version, kind, transactionId (u64), senderId (32 bytes), body]</c>, then, when a
/// swarm key is configured, the authenticator (<see cref="DatagramAuthenticator"/>: an 8-byte timestamp and a 16-byte MAC of
/// everything before it). Written and read by hand; untrusted input never reaches a resolver.
/// </summary>
internal static class DhtCodec
{
    public static byte[] Encode(DhtHeader header, IDhtBody body, DatagramAuthenticator? authenticator)
    {
        if (header.Kind != body.Kind) throw new ArgumentException("header and body kinds differ", nameof(body));
        var buffer = new ArrayBufferWriter<byte>(256);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(5);
        writer.Write(DhtLimits.ProtocolVersion);
        writer.Write((int)header.Kind);
        writer.Write(header.TransactionId);
        WriteHash(ref writer, header.Sender);
        body.Write(ref writer);
        writer.Flush();
        int length = buffer.WrittenCount;
        if (length > DhtLimits.MaxLength(header.Kind))
            throw new InvalidOperationException($"{header.Kind} message of {length} bytes exceeds its limit of {DhtLimits.MaxLength(header.Kind)}");
        return authenticator == null ? buffer.WrittenSpan.ToArray() : authenticator.Seal(buffer.WrittenSpan);
    }

    /// <summary>
    /// Parses a datagram; never throws on bad input. With an authenticator, the authenticator is checked (and the datagram
    /// remembered against replay) before anything is parsed.
    /// </summary>
    public static DecodeResult TryDecode(ReadOnlyMemory<byte> datagram, DatagramAuthenticator? authenticator, out DhtHeader header, out IDhtBody? body)
    {
        header = default;
        body = null;
        if (datagram.Length > DhtLimits.MaxDatagramLength) return DecodeResult.Oversized;
        if (authenticator != null)
        {
            switch (authenticator.Open(datagram, out datagram))
            {
                case AuthResult.Ok: break;
                case AuthResult.BadMac: return DecodeResult.BadMac;
                case AuthResult.OutsideWindow: return DecodeResult.OutsideWindow;
                default: return DecodeResult.Replayed;
            }
        }
        try
        {
            var reader = new MessagePackReader(datagram);
            if (reader.ReadArrayHeader() != 5) return DecodeResult.Malformed;
            if (reader.ReadInt32() != DhtLimits.ProtocolVersion) return DecodeResult.Malformed;
            int kindValue = reader.ReadInt32();
            var kind = (DhtMessageKind)kindValue;
            int max = DhtLimits.MaxLength(kind);
            if (max == 0) return DecodeResult.Malformed;
            if (datagram.Length > max) return DecodeResult.Oversized;
            ulong txid = reader.ReadUInt64();
            var sender = ReadHash(ref reader);
            body = kind switch
            {
                DhtMessageKind.Ping => PingRequest.Read(ref reader),
                DhtMessageKind.Pong => PongResponse.Read(ref reader),
                DhtMessageKind.FindNode => FindNodeRequest.Read(ref reader),
                DhtMessageKind.Nodes => NodesResponse.Read(ref reader),
                DhtMessageKind.GetProviders => GetProvidersRequest.Read(ref reader),
                DhtMessageKind.Providers => ProvidersResponse.Read(ref reader),
                DhtMessageKind.AddProvider => AddProviderRequest.Read(ref reader),
                DhtMessageKind.AddProviderResult or DhtMessageKind.PutResult => StatusResponse.Read(kind, ref reader),
                DhtMessageKind.Get => GetRequest.Read(ref reader),
                DhtMessageKind.Records => RecordsResponse.Read(ref reader),
                DhtMessageKind.Put => PutRequest.Read(ref reader),
                _ => throw new InvalidDataException("unknown kind"),
            };
            if (!reader.End)
            {
                body = null;
                return DecodeResult.Malformed;
            }
            header = new DhtHeader(kind, txid, sender);
            return DecodeResult.Ok;
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidDataException or ArgumentException or InvalidOperationException)
        {
            body = null;
            return DecodeResult.Malformed;
        }
    }

    internal static void ExpectFields(ref MessagePackReader reader, int count)
    {
        int n = reader.ReadArrayHeader();
        if (n != count) throw new InvalidDataException($"{n} fields, expected {count}");
    }

    internal static void WriteHash(ref MessagePackWriter writer, Hash256 hash)
    {
        Span<byte> b = stackalloc byte[Hash256.Size];
        hash.CopyTo(b);
        writer.Write(b);
    }

    internal static Hash256 ReadHash(ref MessagePackReader reader)
    {
        var seq = reader.ReadBytes() ?? throw new InvalidDataException("missing id");
        if (seq.Length != Hash256.Size) throw new InvalidDataException("an id must be 32 bytes");
        Span<byte> b = stackalloc byte[Hash256.Size];
        seq.CopyTo(b);
        return new Hash256(b);
    }

    internal static byte[] ReadBytes(ref MessagePackReader reader, int maxLength)
    {
        var seq = reader.ReadBytes() ?? throw new InvalidDataException("missing bytes");
        if (seq.Length > maxLength) throw new InvalidDataException($"{seq.Length} bytes, at most {maxLength} allowed");
        return seq.ToArray();
    }

    internal static byte[] ReadToken(ref MessagePackReader reader)
    {
        var token = ReadBytes(ref reader, DhtLimits.TokenLength);
        if (token.Length != DhtLimits.TokenLength) throw new InvalidDataException("bad token length");
        return token;
    }

    internal static void WriteAddress(ref MessagePackWriter writer, IPAddress address)
    {
        Span<byte> b = stackalloc byte[16];
        DhtAddress.Normalize(address).TryWriteBytes(b, out int written);
        writer.Write(b[..written]);
    }

    internal static IPAddress ReadAddress(ref MessagePackReader reader)
    {
        var seq = reader.ReadBytes() ?? throw new InvalidDataException("missing address");
        if (seq.Length is not (4 or 16)) throw new InvalidDataException("an address must be 4 or 16 bytes");
        Span<byte> b = stackalloc byte[16];
        seq.CopyTo(b);
        return DhtAddress.Normalize(new IPAddress(b[..(int)seq.Length]));
    }

    internal static int ReadPort(ref MessagePackReader reader)
    {
        int port = reader.ReadInt32();
        if (port is < 1 or > 65535) throw new InvalidDataException("port out of range");
        return port;
    }

    internal static void WriteContacts(ref MessagePackWriter writer, IReadOnlyList<Contact> contacts)
    {
        writer.WriteArrayHeader(contacts.Count);
        foreach (var c in contacts)
        {
            writer.WriteArrayHeader(3);
            WriteHash(ref writer, c.Id);
            WriteAddress(ref writer, c.EndPoint.Address);
            writer.Write(c.EndPoint.Port);
        }
    }

    internal static List<Contact> ReadContacts(ref MessagePackReader reader)
    {
        int n = reader.ReadArrayHeader();
        if (n > DhtLimits.MaxContacts) throw new InvalidDataException("too many contacts");
        var contacts = new List<Contact>(n);
        for (int i = 0; i < n; i++)
        {
            ExpectFields(ref reader, 3);
            var id = ReadHash(ref reader);
            var address = ReadAddress(ref reader);
            contacts.Add(new Contact(id, new IPEndPoint(address, ReadPort(ref reader))));
        }
        return contacts;
    }

    internal static void WriteHoldings(ref MessagePackWriter writer, ProviderHoldings holdings)
    {
        writer.WriteArrayHeader(3);
        writer.Write(holdings.VerifiedPieces);
        writer.Write(holdings.TotalPieces);
        if (holdings.Bitmap.IsEmpty) writer.WriteNil();
        else writer.Write(holdings.Bitmap.Span);
    }

    internal static ProviderHoldings ReadHoldings(ref MessagePackReader reader)
    {
        ExpectFields(ref reader, 3);
        int verified = reader.ReadInt32();
        int total = reader.ReadInt32();
        byte[]? bitmap = reader.TryReadNil() ? null : ReadBytes(ref reader, ProviderHoldings.MaxBitmapBytes);
        if (!ProviderHoldings.IsValid(verified, total, bitmap?.Length ?? 0)) throw new InvalidDataException("inconsistent holdings");
        return ProviderHoldings.FromWire(verified, total, bitmap);
    }

    internal static void WriteRecord(ref MessagePackWriter writer, SignedRecord record)
    {
        writer.WriteArrayHeader(6);
        WriteHash(ref writer, record.Key);
        writer.Write(record.Value.Span);
        writer.Write(record.Sequence);
        writer.Write(record.ExpiresUnixSeconds);
        writer.Write(record.PublicKey.Span);
        writer.Write(record.Signature.Span);
    }

    /// <summary>Reads a record's fields; the signature is checked by whoever stores or returns it.</summary>
    internal static SignedRecord ReadRecord(ref MessagePackReader reader)
    {
        ExpectFields(ref reader, 6);
        var key = ReadHash(ref reader);
        var value = ReadBytes(ref reader, SignedRecord.MaxValueLength);
        long sequence = reader.ReadInt64();
        if (sequence < 0) throw new InvalidDataException("negative sequence");
        long expires = reader.ReadInt64();
        if (expires is < 0 or > 253402300799) throw new InvalidDataException("expiry out of range");
        var publicKey = ReadBytes(ref reader, SignedRecord.MaxPublicKeyLength);
        if (publicKey.Length == 0) throw new InvalidDataException("missing public key");
        var signature = ReadBytes(ref reader, EcdsaSignature.Length);
        return new SignedRecord(key, value, sequence, expires, publicKey, signature);
    }
}
