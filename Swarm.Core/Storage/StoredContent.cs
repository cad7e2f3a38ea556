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
        _tags = new UnitTags(manifest.PieceCount);
        if (manifest.IsLive) LoadPieceHashes();
        bool rehashed = false;
        if (JournalLost())
        {
            // The data file is whole but the journal is gone: re-hash every piece (a read pass) instead of fetching it
            // all again. Only pieces that match their manifest hash count.
            for (int i = 0; i < Layout.PieceCount; i++) if (Manifest.HasPieceHash(i)) Verified.Set(i);
            Reverify();
            RebuiltJournal = rehashed = true;
        }
        else
        {
            LoadJournal();
        }
        if (!rehashed && Verified.IsComplete && !StampMatches()) Reverify();
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
    /// <summary>True when this open found the journal missing and rebuilt it by re-hashing the data file.</summary>
    public bool RebuiltJournal { get; }

    /// <summary>
    /// Raised once when a verified piece fails its hash check in the store (it was dropped from <see cref="Verified"/> and
    /// from the journal, and is no longer served). The argument is the piece index.
    /// </summary>
    public event Action<int>? PieceRotten;

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
            throw new StoreBusyException($"another swarm process is already downloading {Id} into {Directory}", e);
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
        // The bytes just written are the verified ones: their unit tags let reads for peers, the mirror and exports check
        // them without hashing the piece again (a GMAC pass, about a third of a SHA-256 one).
        _tags.Record(piece, data);
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

    /// <summary>
    /// Reads bytes of verified content as they are on disk, without checking them against their hashes. Whatever leaves the
    /// node (blocks for peers, the mirror) goes through <see cref="ReadVerified"/> instead; this is the baseline it is
    /// measured against. The caller must only ask for verified pieces.
    /// </summary>
    public int Read(long offset, Span<byte> destination)
    {
        var handle = DataHandle();
        ReadExactly(handle, destination, offset);
        return destination.Length;
    }

    /// <summary>
    /// Bytes of verified content that are checked against their hashes before they are returned, so a byte that changed on
    /// disk after it was verified never leaves the node. Each 128 KiB check unit is checked against its keyed tag
    /// (<see cref="UnitTags"/>: 16 bytes per unit, in memory only), recorded when this process verified the piece (it was
    /// downloaded or ingested here) or, for a piece without tags (after a restart), by this first read, which hashes the
    /// whole piece against its manifest hash. A wire block is exactly one aligned
    /// unit, so it is read straight into <paramref name="destination"/> (the send buffer) and checked there; unaligned ranges
    /// read the covering units through a pooled buffer. A piece that fails is dropped (<see cref="PieceRotten"/>) and
    /// <see cref="PieceRottenException"/> is thrown; nothing has then been written to <paramref name="destination"/> that
    /// the caller may use.
    /// </summary>
    public int ReadVerified(long offset, Span<byte> destination)
    {
        if (ServesUncheckedForTests) return Read(offset, destination);
        var handle = DataHandle();
        if (offset < 0 || offset + destination.Length > Layout.Length) throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{destination.Length} is outside {Id}");
        int done = 0;
        while (done < destination.Length)
        {
            long position = offset + done;
            int piece = (int)(position / Layout.PieceSize);
            long pieceStart = Layout.PieceOffset(piece);
            int pieceLength = Layout.PieceLength(piece);
            int n = (int)Math.Min(destination.Length - done, pieceStart + pieceLength - position);
            ReadPieceVerified(handle, piece, (int)(position - pieceStart), destination.Slice(done, n));
            done += n;
        }
        return done;
    }

    /// <summary>
    /// Tests only: makes this entry a lying peer, one that serves what its data file holds without checking it (what a
    /// modified node would do), so the downloader's defences (hash failures, parole, smart ban) can be exercised with the
    /// real exchange code. Never set outside tests.
    /// </summary>
    internal bool ServesUncheckedForTests { get; set; }

    /// <summary>The size of a check unit of <see cref="ReadVerified"/>: the wire block size, so a block is one unit.</summary>
    public const int CheckUnit = UnitTags.Unit;

    /// <summary>Per piece, a keyed tag of each check unit, once this process saw the piece's bytes match its manifest hash.</summary>
    private readonly UnitTags _tags;

    /// <summary>Takes the unit tags of the pieces an ingest just hashed and wrote (<see cref="IngestStaging"/>), for the verified ones.</summary>
    internal void AdoptUnitTags(UnitTags staged)
    {
        for (int i = 0; i < Layout.PieceCount; i++) if (!Verified[i]) staged.Forget(i);
        _tags.TakeFrom(staged);
    }

    private void ReadPieceVerified(SafeFileHandle handle, int piece, int inPiece, Span<byte> destination)
    {
        if (!Verified[piece]) throw NotHeld(piece);
        long pieceStart = Layout.PieceOffset(piece);
        int pieceLength = Layout.PieceLength(piece);
        var tags = _tags.Of(piece);
        if (tags == null)
        {
            // First read of this piece in this process: the whole piece against the manifest hash, then its unit tags.
            byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(pieceLength);
            try
            {
                var data = buffer.AsSpan(0, pieceLength);
                ReadExactly(handle, data, pieceStart);
                if (!Manifest.VerifyPiece(piece, data)) throw Rotten(piece);
                // Only while still verified: a piece dropped meanwhile must be hashed again from the manifest after a refetch.
                if (Verified[piece]) _tags.Record(piece, data);
                data.Slice(inPiece, destination.Length).CopyTo(destination);
                return;
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        int first = inPiece / CheckUnit;
        int end = Math.Min(pieceLength, (inPiece + destination.Length + CheckUnit - 1) / CheckUnit * CheckUnit);
        if (inPiece % CheckUnit == 0 && inPiece + destination.Length == end)
        {
            // Aligned (every wire block): read straight into the caller's buffer and check it there.
            ReadExactly(handle, destination, pieceStart + inPiece);
            if (!UnitTags.Matches(tags, first, destination)) throw Rotten(piece);
            return;
        }
        int start = first * CheckUnit;
        byte[] scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(end - start);
        try
        {
            var covering = scratch.AsSpan(0, end - start);
            ReadExactly(handle, covering, pieceStart + start);
            if (!UnitTags.Matches(tags, first, covering)) throw Rotten(piece);
            covering.Slice(inPiece - start, destination.Length).CopyTo(destination);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private PieceRottenException Rotten(int piece)
    {
        DropRottenPiece(piece);
        return new PieceRottenException(Id, [piece],
            $"piece {piece} of {Id} failed its hash check in the store (its bytes on disk changed after they were verified); it is no longer served and is fetched again from peers");
    }

    private PieceRottenException NotHeld(int piece) =>
        new(Id, [piece], $"piece {piece} of {Id} is not held any more (it failed its hash check in the store); it is fetched again from peers");

    private SafeFileHandle DataHandle()
    {
        var handle = Volatile.Read(ref _data) ?? throw new ObjectDisposedException(nameof(StoredContent));
        if (_stamp is { } stamp && File.GetLastWriteTimeUtc(handle).Ticks != stamp)
            throw new ContentModifiedException($"the stored data of {Id} was modified outside swarm (an exported file was written in place?); it is no longer served. Run 'swarm get' again to repair it.");
        return handle;
    }

    private void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset)
    {
        int total = 0;
        while (total < destination.Length)
        {
            int n = RandomAccess.Read(handle, destination[total..], offset + total);
            if (n == 0) throw new IOException($"data file of {Id} is shorter than its manifest says; the store is damaged (remove {Directory})");
            total += n;
        }
    }

    /// <summary>
    /// Drops a verified piece whose stored bytes no longer match its hash: out of <see cref="Verified"/>, out of the journal
    /// (rewritten atomically), no longer served. A content that was complete gets a writable data handle (its read-only one
    /// is kept for readers still using it until disposal) and loses its stamp, which is written again when it completes.
    /// Raises <see cref="PieceRotten"/> once per drop. Returns false when the piece was not verified (already dropped).
    /// </summary>
    public bool DropRottenPiece(int piece)
    {
        lock (_journalLock)
        {
            if (Volatile.Read(ref _disposed) != 0 || !Verified[piece]) return false;
            bool wasComplete = Verified.IsComplete;
            Verified.Clear(piece);
            _tags.Forget(piece);
            _journal?.Dispose();
            _journal = null;
            WriteJournal(Verified);
            if (wasComplete)
            {
                _stamp = null;
                File.Delete(Path.Combine(Directory, StampFile));
                lock (_writeLock)
                {
                    var writable = File.OpenHandle(DataPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
                    _direct ??= NativeFile.TryOpenDirect(DataPath);
                    var old = Interlocked.Exchange(ref _data, writable);
                    if (old != null) _retired.Add(old);
                }
            }
        }
        try
        {
            PieceRotten?.Invoke(piece);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException) { } // a handler's failure must not stop the caller's refusal
        return true;
    }

    private readonly List<SafeFileHandle> _retired = [];

    /// <summary>
    /// Re-hashes the verified pieces against their manifest hashes, except those in <paramref name="verifiedInMemory"/>
    /// (pieces the caller verified in memory itself just now, e.g. during this very download). Pieces that fail are dropped
    /// (<see cref="DropRottenPiece"/>). Returns the rotten pieces (empty when all match).
    /// </summary>
    public IReadOnlyList<int> CheckStoredPieces(Bitfield? verifiedInMemory)
    {
        var skip = verifiedInMemory is { } v && v.Length == Layout.PieceCount ? v : null;
        var rotten = StoredPiecesFailing(DataHandle(), skip);
        foreach (int piece in rotten) DropRottenPiece(piece);
        return rotten;
    }

    /// <summary>
    /// The verified pieces (other than those in <paramref name="skip"/>) whose bytes in the data file no longer match their
    /// manifest hash — checked against the piece's unit tags where this process has them (<see cref="UnitTags"/>), else
    /// hashed, and tagged when they match; a piece the file is too short to hold counts as failing. One pooled piece buffer.
    /// </summary>
    private List<int> StoredPiecesFailing(SafeFileHandle handle, Bitfield? skip)
    {
        List<int> failing = [];
        if (Layout.PieceCount == 0) return failing;
        long fileLength = RandomAccess.GetLength(handle);
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Layout.PieceSize);
        try
        {
            for (int i = 0; i < Layout.PieceCount; i++)
            {
                if (!Verified[i] || (skip != null && skip[i])) continue;
                int length = Layout.PieceLength(i);
                var data = buffer.AsSpan(0, length);
                if (Layout.PieceOffset(i) + length > fileLength || RandomAccess.Read(handle, data, Layout.PieceOffset(i)) != length)
                    failing.Add(i);
                else if (_tags.Of(i) is { } tags)
                {
                    if (!UnitTags.Matches(tags, 0, data)) failing.Add(i);
                }
                else if (Manifest.VerifyPiece(i, data)) _tags.Record(i, data);
                else failing.Add(i);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return failing;
    }

    /// <summary>Pieces verified now that were not in <paramref name="before"/> (all verified pieces when it is null): what a download verified itself.</summary>
    public Bitfield VerifiedSince(Bitfield? before)
    {
        var since = new Bitfield(Layout.PieceCount);
        for (int i = 0; i < Layout.PieceCount; i++)
            if (Verified[i] && (before == null || before.Length != Layout.PieceCount || !before[i])) since.Set(i);
        return since;
    }

    /// <summary>The at-rest check of <see cref="Export"/>: throws <see cref="PieceRottenException"/> (the pieces are dropped) when a stored piece fails.</summary>
    internal void VerifyBeforeExport(Bitfield? verifiedInMemory)
    {
        var rotten = CheckStoredPieces(verifiedInMemory);
        if (rotten.Count == 0) return;
        string which = rotten.Count == 1 ? $"piece {rotten[0]}" : $"pieces {string.Join(", ", rotten.Take(10))}{(rotten.Count > 10 ? ", …" : "")}";
        throw new PieceRottenException(Id, rotten,
            $"{which} of {Id} failed {(rotten.Count == 1 ? "its" : "their")} hash check in the store (the bytes on disk changed after they were verified); nothing was written; fetch {(rotten.Count == 1 ? "it" : "them")} again from peers");
    }

    /// <summary>
    /// Makes the verified content appear at <paramref name="outputPath"/> atomically: a hard link (or a copy when linking is
    /// impossible) under a temporary name in the same directory, then a rename. Never leaves a partial file at the path.
    /// A FIFO or character device is written through instead, a symbolic link's target is replaced (<see cref="OutputTarget"/>).
    /// </summary>
    /// <remarks>
    /// Before the output appears, every piece is re-hashed against the manifest except those in
    /// <paramref name="verifiedInMemory"/> (pieces the caller verified in memory itself during this download; see
    /// <see cref="VerifiedSince"/>), so bytes that changed on disk since they were verified never reach the output. A piece
    /// that fails is dropped and <see cref="PieceRottenException"/> thrown: fetch it again, then export again.
    /// </remarks>
    public void Export(string outputPath, Bitfield? verifiedInMemory = null)
    {
        EnsureExportable();
        VerifyBeforeExport(verifiedInMemory);
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

    /// <summary>What every export checks first: the content is complete, and its data file was not modified outside swarm.</summary>
    internal void EnsureExportable()
    {
        if (!IsComplete) throw new InvalidOperationException($"{Id} is not complete ({Verified.Count}/{Layout.PieceCount} pieces verified)");
        if (!StampMatches())
            throw new ContentModifiedException($"the stored data of {Id} was modified outside swarm (an exported file was written in place?); run 'swarm get' again to repair it [{DescribeStamp()}]");
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
            good = Verified.Clone();
            foreach (int piece in StoredPiecesFailing(handle, null)) good.Clear(piece);
            if (RandomAccess.GetLength(handle) != Layout.Length)
            {
                using var rw = File.OpenHandle(DataPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
                RandomAccess.SetLength(rw, Layout.Length);
            }
        }
        WriteJournal(good);
        File.Delete(Path.Combine(Directory, StampFile));
        Verified = good;
    }

    /// <summary>Replaces the journal with the records of <paramref name="pieces"/> atomically (a temporary file, then a rename).</summary>
    private void WriteJournal(Bitfield pieces)
    {
        var records = new byte[pieces.Count * 4];
        int at = 0;
        for (int i = 0; i < pieces.Length && at < records.Length; i++)
        {
            if (!pieces[i]) continue;
            BinaryPrimitives.WriteInt32LittleEndian(records.AsSpan(at), i);
            at += 4;
        }
        string journal = Path.Combine(Directory, JournalFile);
        File.WriteAllBytes(journal + ".tmp", records.AsSpan(0, at));
        File.Move(journal + ".tmp", journal, overwrite: true);
    }

    /// <summary>
    /// A journal is created with the data file, so a data file of full length without one means the journal was lost (not
    /// a fresh entry). Empty content has nothing to re-hash.
    /// </summary>
    private bool JournalLost()
    {
        if (Layout.Length == 0 || File.Exists(Path.Combine(Directory, JournalFile))) return false;
        var data = new FileInfo(DataPath);
        return data.Exists && data.Length == Layout.Length;
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
                throw new InsufficientSpaceException($"not enough disk space for {Id}: it needs {Layout.Length:N0} bytes and {Directory} has {free:N0} free");
        }
        // OpenOrCreate, not CreateNew: two opens of a new entry at the same moment (two requests for one content) both
        // find no data file; the second must open the file the first created, not fail on it.
        var handle = File.OpenHandle(path, existed ? FileMode.Open : FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        if (RandomAccess.GetLength(handle) != Layout.Length) RandomAccess.SetLength(handle, Layout.Length);
        // An empty journal with the new data file: later, a full-length data file without a journal means a lost journal.
        // Created only if missing, never truncated: a concurrent opener may already have journalled pieces in it.
        string journal = Path.Combine(Directory, JournalFile);
        if (!File.Exists(journal))
        {
            try
            {
                using var created = new FileStream(journal, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite);
            }
            catch (IOException) when (File.Exists(journal)) { }
        }
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
        lock (_writeLock)
        {
            _data?.Dispose();
            _data = null;
            foreach (var old in _retired) old.Dispose();
            _retired.Clear();
        }
        _writerLock?.Dispose();
        _writerLock = null;
        _tags.Dispose();
    }
}

/// <summary>The store's data for a content no longer matches what was verified (it was written through an exported hard link).</summary>
public sealed class ContentModifiedException : IOException
{
    public ContentModifiedException(string message) : base(message) { }
    public ContentModifiedException() { }
    public ContentModifiedException(string message, Exception inner) : base(message, inner) { }
}
