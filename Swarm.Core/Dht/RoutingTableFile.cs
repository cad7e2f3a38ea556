using System.Buffers;
using System.Net;
using MessagePack;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// The routing table on disk, so a restarted node can rejoin without bootstrap addresses: a MessagePack array
/// <c>["swarm-dht-routing", version, ownId, [[id, address, port], ...]]</c>, written to a temporary file and renamed.
/// A missing, truncated or foreign file loads as empty.
/// </summary>
internal static class RoutingTableFile
{
    private const string Magic = "swarm-dht-routing";
    private const int Version = 1;
    private const int MaxContacts = RoutingTable.Buckets * 32;
    private const long MaxFileLength = 4L * 1024 * 1024;

    public static void Save(string path, Hash256 self, IReadOnlyCollection<Contact> contacts)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + contacts.Count * 64);
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(4);
        writer.Write(Magic);
        writer.Write(Version);
        DhtCodec.WriteHash(ref writer, self);
        var list = contacts.Take(MaxContacts).ToList();
        DhtCodec.WriteContacts(ref writer, list);
        writer.Flush();

        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        string tmp = path + ".tmp";
        File.WriteAllBytes(tmp, buffer.WrittenSpan.ToArray());
        File.Move(tmp, path, overwrite: true);
    }

    public static List<Contact> Load(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.Length > MaxFileLength) return [];
            var bytes = File.ReadAllBytes(path);
            var reader = new MessagePackReader(bytes);
            if (reader.ReadArrayHeader() != 4 || reader.ReadString() != Magic || reader.ReadInt32() != Version) return [];
            DhtCodec.ReadHash(ref reader);
            int n = reader.ReadArrayHeader();
            if (n > MaxContacts) return [];
            var contacts = new List<Contact>(n);
            for (int i = 0; i < n; i++)
            {
                DhtCodec.ExpectFields(ref reader, 3);
                var id = DhtCodec.ReadHash(ref reader);
                var address = DhtCodec.ReadAddress(ref reader);
                var ep = new IPEndPoint(address, DhtCodec.ReadPort(ref reader));
                if (DhtAddress.IsUsable(ep)) contacts.Add(new Contact(id, ep));
            }
            return contacts;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or MessagePackSerializationException or EndOfStreamException
                                        or OverflowException or InvalidDataException or ArgumentException or InvalidOperationException)
        {
            return [];
        }
    }
}
