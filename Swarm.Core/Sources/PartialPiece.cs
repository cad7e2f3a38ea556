using System.Buffers.Binary;
using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Storage;

namespace Swarm.Core.Sources;

/// <summary>
/// The start of a piece that an ingest read from its origin when it was stopped, kept in the live entry's directory
/// (<c>partial</c>) so the next run asks the origin only for the bytes after it. The file is in the data directory, which
/// is not trusted: it is read bounded, and used only if its piece is the one the ingest continues at, its length is less
/// than that piece's, and its bytes match the SHA-256 it was written with; anything else reads as nothing held.
/// </summary>
public static class PartialPiece
{
    public const string FileName = "partial";
    private static ReadOnlySpan<byte> Magic => "swarm-partial-v1"u8;
    private static int HeaderLength => Magic.Length + 8 + Hash256.Size;

    /// <summary>Writes the start of <paramref name="piece"/> for the next run (replacing any earlier one). Best effort.</summary>
    public static void Save(StoredContent content, int piece, ReadOnlySpan<byte> data)
    {
        string path = Path.Combine(content.Directory, FileName);
        string tmp = path + ".tmp";
        try
        {
            byte[] header = new byte[HeaderLength];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(Magic.Length), piece);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(Magic.Length + 4), data.Length);
            SHA256.HashData(data, header.AsSpan(Magic.Length + 8));
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                file.Write(header);
                file.Write(data);
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// The held start of <paramref name="piece"/>, or empty; the file is removed either way (what it held goes into the
    /// buffer the ingest continues with, and a run stopped again writes it anew).
    /// </summary>
    public static byte[] Take(StoredContent content, int piece)
    {
        string path = Path.Combine(content.Directory, FileName);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.LinkTarget != null || piece >= content.Layout.PieceCount) return [];
            int limit = content.Layout.PieceLength(piece);
            if (info.Length <= HeaderLength || info.Length >= HeaderLength + limit) return [];
            byte[] all = new byte[info.Length];
            using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                int read = 0, n;
                while (read < all.Length && (n = file.Read(all, read, all.Length - read)) > 0) read += n;
                if (read != all.Length || file.ReadByte() != -1) return [];
            }
            var header = all.AsSpan(0, HeaderLength);
            var data = all.AsSpan(HeaderLength);
            if (!header[..Magic.Length].SequenceEqual(Magic)
                || BinaryPrimitives.ReadInt32LittleEndian(header[Magic.Length..]) != piece
                || BinaryPrimitives.ReadInt32LittleEndian(header[(Magic.Length + 4)..]) != data.Length) return [];
            Span<byte> hash = stackalloc byte[Hash256.Size];
            SHA256.HashData(data, hash);
            return hash.SequenceEqual(header[(Magic.Length + 8)..]) ? data.ToArray() : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
        finally
        {
            Discard(content);
        }
    }

    public static void Discard(StoredContent content)
    {
        try { File.Delete(Path.Combine(content.Directory, FileName)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
