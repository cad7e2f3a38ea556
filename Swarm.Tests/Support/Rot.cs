namespace Swarm.Tests.Support;

/// <summary>Bit rot as a disk makes it: bytes of a file change while its size and modification time stay the same.</summary>
public static class Rot
{
    /// <summary>Inverts the byte at <paramref name="offset"/> and puts the file's modification time back.</summary>
    public static void FlipByte(string path, long offset)
    {
        var mtime = File.GetLastWriteTimeUtc(path);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
        {
            file.Position = offset;
            int b = file.ReadByte();
            file.Position = offset;
            file.WriteByte((byte)(b ^ 0xFF));
        }
        File.SetLastWriteTimeUtc(path, mtime);
        if (File.GetLastWriteTimeUtc(path) != mtime) throw new InvalidOperationException("could not restore the modification time");
    }

    /// <summary>The journal's piece indices (4-byte little-endian records).</summary>
    public static int[] Journal(string entryDirectory)
    {
        string path = Path.Combine(entryDirectory, "pieces");
        if (!File.Exists(path)) return [];
        byte[] bytes = File.ReadAllBytes(path);
        return [.. Enumerable.Range(0, bytes.Length / 4).Select(i => System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i * 4)))];
    }
}
