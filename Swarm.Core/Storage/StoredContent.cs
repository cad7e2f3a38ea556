using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Swarm.Core.Content;

namespace Swarm.Core.Storage;

/// <summary>
/// One content item in the store: its manifest, a preallocated data file written with positional I/O,
/// and a journal of verified pieces (4-byte indices, appended after the piece's data is written) so that
/// a crash or a kill loses at most the pieces in flight. Only pieces that match their manifest hash are written.
/// </summary>
public sealed class StoredContent : IDisposable
{
    internal const string ManifestFile = "manifest";
    internal const string SignatureFile = "signature";
    internal const string DataFile = "data";
    internal const string JournalFile = "pieces";
    internal const string LockFile = "lock";

    private readonly Lock _journalLock = new();
    private SafeFileHandle? _data;
    private FileStream? _journal;
    private FileStream? _writerLock;
    private int _disposed;

    internal StoredContent(string directory, Manifest manifest, byte[] signature)
    {
        Directory = directory;
        Manifest = manifest;
        Signature = signature;
        Verified = new Bitfield(manifest.PieceCount);
        LoadJournal();
        _data = OpenData(writable: !Verified.IsComplete);
    }

    public string Directory { get; }
    public Manifest Manifest { get; }
    public byte[] Signature { get; }
    public ContentId Id => Manifest.Id;
    public PieceLayout Layout => Manifest.Layout;
    public Bitfield Verified { get; }
    public bool IsComplete => Verified.IsComplete;
    public string DataPath => Path.Combine(Directory, DataFile);

    /// <summary>Bytes held in verified pieces.</summary>
    public long VerifiedBytes
    {
        get
        {
            if (Verified.IsComplete) return Layout.Length;
            long total = 0;
            for (int i = 0; i < Layout.PieceCount; i++) if (Verified[i]) total += Layout.PieceLength(i);
            return total;
        }
    }

    /// <summary>Raised after a piece is verified and durably recorded.</summary>
    public event Action<int>? PieceVerified;

    /// <summary>
    /// Takes the exclusive right to write this content (an advisory file lock), so two processes sharing a
    /// data directory never download into the same file. Throws <see cref="IOException"/> when another holds it.
    /// </summary>
    public void AcquireWriter()
    {
        if (_writerLock != null) return;
        try
        {
            _writerLock = new FileStream(Path.Combine(Directory, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"another swarm process is already downloading {Id} into {Directory}; wait for it to finish or use a different --data-dir", e);
        }
    }

    /// <summary>Checks a piece against its manifest hash, and only if it matches writes it and records it. Returns false on a mismatch.</summary>
    public bool TryCommitPiece(int piece, ReadOnlySpan<byte> data)
    {
        if (!Manifest.VerifyPiece(piece, data)) return false;
        if (Verified[piece]) return true;
        var handle = _data ?? throw new ObjectDisposedException(nameof(StoredContent));
        RandomAccess.Write(handle, data, Layout.PieceOffset(piece));
        lock (_journalLock)
        {
            if (Verified[piece]) return true;
            var journal = _journal ??= OpenJournalForAppend();
            Span<byte> rec = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(rec, piece);
            journal.Write(rec);
            journal.Flush();
            Verified.Set(piece);
        }
        PieceVerified?.Invoke(piece);
        return true;
    }

    /// <summary>Reads bytes of verified content. The caller must only ask for verified pieces.</summary>
    public int Read(long offset, Span<byte> destination)
    {
        var handle = _data ?? throw new ObjectDisposedException(nameof(StoredContent));
        int total = 0;
        while (total < destination.Length)
        {
            int n = RandomAccess.Read(handle, destination[total..], offset + total);
            if (n == 0) throw new IOException($"data file of {Id} is shorter than its manifest says; the store is damaged (remove {Directory})");
            total += n;
        }
        return total;
    }

    /// <summary>
    /// Makes the verified content appear at <paramref name="outputPath"/> atomically: a hard link (or a copy when linking is
    /// impossible) under a temporary name in the same directory, then a rename. Never leaves a partial file at the path.
    /// </summary>
    public void Export(string outputPath)
    {
        if (!IsComplete) throw new InvalidOperationException($"{Id} is not complete ({Verified.Count}/{Layout.PieceCount} pieces verified)");
        string full = Path.GetFullPath(outputPath);
        string dir = Path.GetDirectoryName(full)!;
        System.IO.Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(full) + ".swarm-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)));
        try
        {
            if (!NativeFile.TryHardLink(DataPath, tmp))
                File.Copy(DataPath, tmp, overwrite: false);
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    private void LoadJournal()
    {
        string path = Path.Combine(Directory, JournalFile);
        if (!File.Exists(path)) return;
        byte[] bytes = File.ReadAllBytes(path);
        for (int i = 0; i + 4 <= bytes.Length; i += 4)
        {
            int piece = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i));
            if ((uint)piece < (uint)Manifest.PieceCount) Verified.Set(piece);
        }
    }

    private FileStream OpenJournalForAppend()
    {
        var fs = new FileStream(Path.Combine(Directory, JournalFile), FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, 1);
        // A kill in the middle of a record leaves a partial one: cut it off.
        fs.SetLength(fs.Length / 4 * 4);
        fs.Seek(0, SeekOrigin.End);
        return fs;
    }

    private SafeFileHandle OpenData(bool writable)
    {
        string path = DataPath;
        bool existed = File.Exists(path);
        if (!writable && existed) return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        SafeFileHandle handle;
        try
        {
            handle = existed
                ? File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete)
                : File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, FileOptions.None, preallocationSize: Layout.Length);
        }
        catch (IOException e) when (!existed)
        {
            throw new IOException($"cannot allocate {Layout.Length:N0} bytes for {Id} in {Directory}: {e.Message} Free disk space or use a --data-dir on a larger disk.", e);
        }
        if (RandomAccess.GetLength(handle) != Layout.Length) RandomAccess.SetLength(handle, Layout.Length);
        return handle;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        lock (_journalLock)
        {
            _journal?.Dispose();
            _journal = null;
        }
        _data?.Dispose();
        _data = null;
        _writerLock?.Dispose();
        _writerLock = null;
    }
}
