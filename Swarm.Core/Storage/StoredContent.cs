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
    internal const string StampFile = "stamp";
    /// <summary>Live entries only: the signed piece hashes of the pieces held (index, hash, ingester signature).</summary>
    internal const string PieceHashesFile = "piecehashes";
    private const int PieceHashRecord = 4 + Hash256.Size + EcdsaSignature.Length;

    private readonly Lock _journalLock = new();
    private readonly Lock _writeLock = new();
    private SafeFileHandle? _data;
    private SafeFileHandle? _direct;
    private FileStream? _journal;
    private FileStream? _pieceHashes;
    private FileStream? _writerLock;
    private int _disposed;

    internal StoredContent(string directory, Manifest manifest, byte[] signature)
    {
        Directory = directory;
        Manifest = manifest;
        Signature = signature;
        Verified = new Bitfield(manifest.PieceCount);
        if (manifest.IsLive) LoadPieceHashes();
        LoadJournal();
        if (Verified.IsComplete && !StampMatches()) Reverify();
        _data = OpenData(writable: !Verified.IsComplete);
        if (Verified.IsComplete && !File.Exists(Path.Combine(directory, StampFile))) WriteStamp();
    }

    public string Directory { get; }
    public Manifest Manifest { get; }
    public byte[] Signature { get; }
    public ContentId Id => Manifest.Id;
    public PieceLayout Layout => Manifest.Layout;
    public Bitfield Verified { get; private set; }
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
        CommitVerifiedPiece(piece, data);
        return true;
    }

    /// <summary>
    /// Writes and records a piece the caller has already checked against <see cref="Manifest"/> (the ingester, which
    /// computed the hash itself). For a live manifest the piece's hash must be set.
    /// </summary>
    public void CommitVerifiedPiece(int piece, ReadOnlySpan<byte> data)
    {
        if (data.Length != Layout.PieceLength(piece) || !Manifest.HasPieceHash(piece)) throw new ArgumentException($"piece {piece} has the wrong length or no known hash");
        if (Verified[piece]) return;
        var handle = _data ?? throw new ObjectDisposedException(nameof(StoredContent));
        // One writer at a time: concurrent pwrites to one file spin on the inode lock in the kernel (measured: 8-14% of
        // a transfer's CPU). Hashing, the costly part, stays parallel; only the copy into the page cache is serialised.
        long offset = Layout.PieceOffset(piece);
        lock (_writeLock)
        {
            // O_DIRECT when the buffer allows it: no copy into the page cache, which on this kind of machine cost more
            // kernel time than hashing (measured 0.3-2.5 s per GiB buffered, 0.2 s direct).
            if (_direct != null && AlignedBuffer.IsDirectIoCompatible(data, offset)) RandomAccess.Write(_direct, data, offset);
            else RandomAccess.Write(handle, data, offset);
        }
        lock (_journalLock)
        {
            if (Verified[piece]) return;
            if (Manifest.IsLive)
            {
                // The signed hash first: a journalled piece of a live entry must be servable (and checkable) after a restart.
                var hashes = _pieceHashes ??= OpenForAppend(PieceHashesFile, PieceHashRecord);
                Span<byte> h = stackalloc byte[PieceHashRecord];
                BinaryPrimitives.WriteInt32LittleEndian(h, piece);
                Manifest.PieceHash(piece).CopyTo(h[4..]);
                Manifest.PieceSignature(piece).CopyTo(h[(4 + Hash256.Size)..]);
                hashes.Write(h);
                hashes.Flush();
            }
            var journal = _journal ??= OpenJournalForAppend();
            Span<byte> rec = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(rec, piece);
            journal.Write(rec);
            journal.Flush();
            // The stamp must exist before completion becomes visible, or an Export right then would see no stamp.
            if (Verified.Count == Layout.PieceCount - 1) WriteStamp();
            Verified.Set(piece);
        }
        PieceVerified?.Invoke(piece);
    }

    /// <summary>Reads bytes of verified content. The caller must only ask for verified pieces.</summary>
    public int Read(long offset, Span<byte> destination)
    {
        var handle = _data ?? throw new ObjectDisposedException(nameof(StoredContent));
        if (_stamp is { } stamp && File.GetLastWriteTimeUtc(handle).Ticks != stamp)
            throw new ContentModifiedException($"the stored data of {Id} was modified outside swarm (an exported file was written in place?); it is no longer served. Run 'swarm get' again to repair it.");
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
    /// A FIFO or character device is written through instead, a symbolic link's target is replaced (<see cref="OutputTarget"/>).
    /// </summary>
    public void Export(string outputPath)
    {
        if (!IsComplete) throw new InvalidOperationException($"{Id} is not complete ({Verified.Count}/{Layout.PieceCount} pieces verified)");
        if (!StampMatches())
            throw new ContentModifiedException($"the stored data of {Id} was modified outside swarm (an exported file was written in place?); run 'swarm get' again to repair it [{DescribeStamp()}]");
        string full = Path.GetFullPath(outputPath);
        // Never replace a FIFO, a device or a symbolic link with a hard link into the store (issue #13): see OutputTarget.
        var target = OutputTarget.Inspect(full);
        if (target.WritesThrough)
        {
            target.WriteThrough(this);
            return;
        }
        full = target.FilePath;
        string dir = Path.GetDirectoryName(full)!;
        System.IO.Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(full) + ".swarm-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)));
        try
        {
            if (!NativeFile.TryHardLink(DataPath, tmp))
                File.Copy(DataPath, tmp, overwrite: false);
            File.Move(tmp, full, overwrite: true);
            // rename() between two links of one inode (the output already was this content) does nothing: drop the temp link.
            if (File.Exists(tmp)) File.Delete(tmp);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    private long? _stamp;

    /// <summary>
    /// Exported files are hard links to the data file, so writing one in place changes the store. The data file's
    /// modification time, recorded when the content became complete, tells whether that happened.
    /// </summary>
    private bool StampMatches()
    {
        string path = Path.Combine(Directory, StampFile);
        if (!File.Exists(path) || !File.Exists(DataPath)) return false;
        var parts = File.ReadAllText(path).Split(' ');
        if (parts.Length != 2 || !long.TryParse(parts[0], out long length) || !long.TryParse(parts[1], out long ticks)) return false;
        var info = new FileInfo(DataPath);
        if (info.Length != length || info.LastWriteTimeUtc.Ticks != ticks) return false;
        _stamp = ticks;
        return true;
    }

    private string DescribeStamp()
    {
        string path = Path.Combine(Directory, StampFile);
        var info = new FileInfo(DataPath);
        return $"stamp {(File.Exists(path) ? File.ReadAllText(path) : "missing")}, data {info.Length} {info.LastWriteTimeUtc.Ticks}";
    }

    private void WriteStamp()
    {
        var info = new FileInfo(DataPath);
        _stamp = info.LastWriteTimeUtc.Ticks;
        string path = Path.Combine(Directory, StampFile);
        File.WriteAllText(path + ".tmp", $"{info.Length} {_stamp}");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Re-hashes every journalled piece and keeps only those that still match (after an outside modification).</summary>
    private void Reverify()
    {
        var good = new Bitfield(Manifest.PieceCount);
        if (File.Exists(DataPath))
        {
            using var handle = File.OpenHandle(DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long fileLength = RandomAccess.GetLength(handle);
            byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Layout.PieceSize);
            try
            {
                for (int i = 0; i < Layout.PieceCount; i++)
                {
                    int length = Layout.PieceLength(i);
                    if (!Verified[i] || Layout.PieceOffset(i) + length > fileLength) continue;
                    int n = RandomAccess.Read(handle, buffer.AsSpan(0, length), Layout.PieceOffset(i));
                    if (n == length && Manifest.VerifyPiece(i, buffer.AsSpan(0, length))) good.Set(i);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
            if (fileLength != Layout.Length)
            {
                using var rw = File.OpenHandle(DataPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
                RandomAccess.SetLength(rw, Layout.Length);
            }
        }
        var records = new byte[good.Count * 4];
        int at = 0;
        for (int i = 0; i < good.Length; i++)
        {
            if (!good[i]) continue;
            BinaryPrimitives.WriteInt32LittleEndian(records.AsSpan(at), i);
            at += 4;
        }
        string journal = Path.Combine(Directory, JournalFile);
        File.WriteAllBytes(journal + ".tmp", records);
        File.Move(journal + ".tmp", journal, overwrite: true);
        File.Delete(Path.Combine(Directory, StampFile));
        Verified = good;
    }

    private void LoadJournal()
    {
        string path = Path.Combine(Directory, JournalFile);
        if (!File.Exists(path)) return;
        byte[] bytes = File.ReadAllBytes(path);
        for (int i = 0; i + 4 <= bytes.Length; i += 4)
        {
            int piece = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i));
            // A live entry's piece counts only with its signed hash (written before the journal record).
            if ((uint)piece < (uint)Manifest.PieceCount && Manifest.HasPieceHash(piece)) Verified.Set(piece);
        }
    }

    private void LoadPieceHashes()
    {
        string path = Path.Combine(Directory, PieceHashesFile);
        if (!File.Exists(path)) return;
        byte[] bytes = File.ReadAllBytes(path);
        for (int i = 0; i + PieceHashRecord <= bytes.Length; i += PieceHashRecord)
        {
            var record = bytes.AsSpan(i, PieceHashRecord);
            int piece = BinaryPrimitives.ReadInt32LittleEndian(record);
            if ((uint)piece < (uint)Manifest.PieceCount)
                Manifest.SetPieceHash(piece, record.Slice(4, Hash256.Size), record.Slice(4 + Hash256.Size, EcdsaSignature.Length));
        }
    }

    private FileStream OpenJournalForAppend() => OpenForAppend(JournalFile, 4);

    private FileStream OpenForAppend(string name, int recordLength)
    {
        var fs = new FileStream(Path.Combine(Directory, name), FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, 1);
        // A kill in the middle of a record leaves a partial one: cut it off.
        fs.SetLength(fs.Length / recordLength * recordLength);
        fs.Seek(0, SeekOrigin.End);
        return fs;
    }

    private SafeFileHandle OpenData(bool writable)
    {
        string path = DataPath;
        bool existed = File.Exists(path);
        if (!writable && existed) return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (!existed)
        {
            // Sparse, not fallocated: on ext4, writes into fallocated (unwritten) extents cost far more kernel time than
            // delayed allocation (measured: 1 GiB took 0.4-2.5 s of system time instead of 0.3 s). So check the space now.
            long free = new DriveInfo(Directory).AvailableFreeSpace;
            if (free < Layout.Length)
                throw new IOException($"not enough disk space for {Id}: it needs {Layout.Length:N0} bytes and {Directory} has {free:N0} free. Free disk space or use a --data-dir on a larger disk.");
        }
        var handle = File.OpenHandle(path, existed ? FileMode.Open : FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        if (RandomAccess.GetLength(handle) != Layout.Length) RandomAccess.SetLength(handle, Layout.Length);
        _direct = NativeFile.TryOpenDirect(path);
        return handle;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        lock (_journalLock)
        {
            _journal?.Dispose();
            _journal = null;
            _pieceHashes?.Dispose();
            _pieceHashes = null;
        }
        lock (_writeLock)
        {
            _direct?.Dispose();
            _direct = null;
        }
        _data?.Dispose();
        _data = null;
        _writerLock?.Dispose();
        _writerLock = null;
    }
}

/// <summary>The store's data for a content no longer matches what was verified (it was written through an exported hard link).</summary>
public sealed class ContentModifiedException : IOException
{
    public ContentModifiedException(string message) : base(message) { }
    public ContentModifiedException() { }
    public ContentModifiedException(string message, Exception inner) : base(message, inner) { }
}
