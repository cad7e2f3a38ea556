using System.Buffers;
using MessagePack;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Sources;

namespace Swarm.Node;

/// <summary>
/// What a task key points at, as one publisher signed it: a sealed content, or the live content of an ingest still running,
/// and the origin's validators the publisher saw when it ingested (so a reader can tell whether the pointer names the
/// version the origin serves now).
/// </summary>
/// <param name="Id">The content.</param>
/// <param name="Live">The live content of an ingest that is still running.</param>
/// <param name="Validators">The origin's validators at ingest (with the whole content's SHA-256 once sealed).</param>
/// <param name="Publisher">The node id that signed the record.</param>
/// <param name="Sequence">The record's sequence number (counts per publisher).</param>
public sealed record TaskPointer(ContentId Id, bool Live, OriginValidators Validators, Hash256 Publisher, long Sequence)
{
    private const int FormatVersion = 3;

    /// <summary>The record value: MessagePack <c>[3, id, live, length, etag|nil, last-modified unix seconds|nil, sha256|nil]</c>.</summary>
    public static byte[] Encode(ContentId id, bool live, OriginValidators validators)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        var w = new MessagePackWriter(buffer);
        w.WriteArrayHeader(7);
        w.Write(FormatVersion);
        w.Write(id.Value.ToArray());
        w.Write(live);
        w.Write(validators.Length);
        if (validators.ETag is { } etag) w.Write(etag); else w.WriteNil();
        if (validators.LastModified is { } lm) w.Write(lm.ToUnixTimeSeconds()); else w.WriteNil();
        if (validators.Sha256 is { } sha) w.Write(sha.ToArray()); else w.WriteNil();
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a record's value; null when it is not a pointer in this format (older formats, garbage).</summary>
    public static TaskPointer? TryDecode(SignedRecord record) => TryDecode(record.Value, record.Publisher, record.Sequence);

    /// <summary>Reads a pointer value (a DHT record's, or the data directory's <see cref="LocalTaskRecord"/>); null when it is not one.</summary>
    public static TaskPointer? TryDecode(ReadOnlyMemory<byte> value, Hash256 publisher, long sequence)
    {
        try
        {
            var r = new MessagePackReader(value);
            if (r.ReadArrayHeader() != 7 || r.ReadInt32() != FormatVersion) return null;
            var id = ReadHash(ref r);
            bool live = r.ReadBoolean();
            long length = r.ReadInt64();
            if (id == null || length < 0) return null;
            string? etag = r.TryReadNil() ? null : r.ReadString();
            if (etag is { Length: > OriginValidators.MaxETagLength }) return null;
            DateTimeOffset? lastModified = r.TryReadNil() ? null : DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(r.ReadInt64(), 0, 253402300799));
            Hash256? sha = r.TryReadNil() ? null : ReadHash(ref r) ?? throw new MessagePackSerializationException("bad sha256");
            return new TaskPointer(new ContentId(id.Value), live, new OriginValidators(length, etag, lastModified, sha), publisher, sequence);
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException)
        {
            return null;
        }
    }

    private static Hash256? ReadHash(ref MessagePackReader r)
    {
        var bytes = r.ReadBytes();
        return bytes is { Length: Hash256.Size } b ? new Hash256(b.ToArray()) : null;
    }
}
