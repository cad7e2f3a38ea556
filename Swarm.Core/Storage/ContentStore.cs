using System.Buffers;
using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Identity;

namespace Swarm.Core.Storage;

/// <summary>
/// The node's content store: <c>&lt;root&gt;/content/&lt;id hex&gt;/</c> holds each item's manifest, signature, data file and
/// journal of verified pieces. Items are created under a temporary name and renamed into place, so a
/// directory with a manifest is always a whole, valid entry.
/// </summary>
public sealed class ContentStore
{
    public ContentStore(string root)
    {
        Root = Path.GetFullPath(root);
        ContentRoot = Path.Combine(Root, "content");
        TempRoot = Path.Combine(Root, "tmp");
        Directory.CreateDirectory(ContentRoot);
        Directory.CreateDirectory(TempRoot);
    }

    public string Root { get; }
    public string ContentRoot { get; }
    public string TempRoot { get; }

    /// <summary>Ids of every entry in the store (complete or not).</summary>
    public IReadOnlyList<ContentId> List() =>
        [.. Directory.EnumerateDirectories(ContentRoot)
            .Select(d => ContentId.TryParse(Path.GetFileName(d), out var id) ? id : (ContentId?)null)
            .Where(id => id != null && File.Exists(Path.Combine(EntryDirectory(id.Value), StoredContent.ManifestFile)))
            .Select(id => id!.Value)];

    private string EntryDirectory(ContentId id) => Path.Combine(ContentRoot, id.Hex);

    private const string UsedFile = "used";

    /// <summary>Records that the content was used now (fetched, exported, served): least recently used goes first.</summary>
    public void Touch(ContentId id)
    {
        string path = Path.Combine(EntryDirectory(id), UsedFile);
        try
        {
            if (!File.Exists(path)) File.WriteAllBytes(path, []);
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // the entry went away
    }

    /// <summary>When the content was last used (<see cref="Touch"/>), else when its entry was made.</summary>
    public DateTime LastUsed(ContentId id)
    {
        string dir = EntryDirectory(id);
        string path = Path.Combine(dir, UsedFile);
        return File.Exists(path) ? File.GetLastWriteTimeUtc(path) : Directory.GetLastWriteTimeUtc(dir);
    }

    /// <summary>Bytes the entry counts against a quota: its data file's length (a partial download counts in full, as it
    /// will be; hard-linked live and sealed entries count twice — conservative).</summary>
    public long DiskUsage(ContentId id)
    {
        string data = Path.Combine(EntryDirectory(id), StoredContent.DataFile);
        return File.Exists(data) ? new FileInfo(data).Length : 0;
    }

    /// <summary>Deletes an entry (the caller has stopped using it). Renamed away first, so a half-deleted entry is never seen.</summary>
    public bool Delete(ContentId id)
    {
        string dir = EntryDirectory(id);
        if (!Directory.Exists(dir)) return false;
        string gone = NewTempDirectory();
        Directory.Delete(gone);
        Directory.Move(dir, gone);
        TryDeleteDirectory(gone);
        return true;
    }

    /// <summary>Opens an entry if the store has its manifest; null otherwise. A damaged entry is reported, not trusted.</summary>
    public StoredContent? TryOpen(ContentId id)
    {
        string dir = EntryDirectory(id);
        string manifestPath = Path.Combine(dir, StoredContent.ManifestFile);
        if (!File.Exists(manifestPath)) return null;
        var manifest = Manifest.Decode(File.ReadAllBytes(manifestPath));
        if (manifest.Id != id) throw new InvalidDataException($"store entry {dir} holds a manifest for another id; remove the directory");
        byte[] signature = File.ReadAllBytes(Path.Combine(dir, StoredContent.SignatureFile));
        return new StoredContent(dir, manifest, signature);
    }

    /// <summary>Opens the entry for a manifest received from a peer, creating it if needed. The signature must already be checked.</summary>
    public StoredContent OpenOrCreate(Manifest manifest, byte[] signature)
    {
        var existing = TryOpen(manifest.Id);
        if (existing != null) return existing;
        string tmp = NewTempDirectory();
        File.WriteAllBytes(Path.Combine(tmp, StoredContent.ManifestFile), manifest.Encoded);
        File.WriteAllBytes(Path.Combine(tmp, StoredContent.SignatureFile), signature);
        try
        {
            Directory.Move(tmp, EntryDirectory(manifest.Id));
        }
        catch (IOException) when (Directory.Exists(EntryDirectory(manifest.Id)))
        {
            Directory.Delete(tmp, recursive: true); // another process created it first
        }
        return TryOpen(manifest.Id) ?? throw new IOException($"could not create store entry for {manifest.Id} in {ContentRoot}");
    }

    /// <summary>
    /// Turns a complete live entry into the ordinary entry of the same bytes: the sealed manifest, the ingester's signature
    /// over it (checked here), and the data file hard-linked (copied where linking is impossible). Returns the new entry,
    /// or the existing one when the store already has it complete.
    /// </summary>
    public StoredContent SealLive(StoredContent live, byte[] signature)
    {
        if (!live.Manifest.IsLive || !live.IsComplete) throw new InvalidOperationException($"{live.Id} is not a complete live entry");
        var manifest = live.Manifest.Seal() ?? throw new InvalidOperationException($"{live.Id} lacks piece hashes");
        if (!manifest.VerifySignature(signature)) throw new InvalidDataException($"the seal of {live.Id} is not the ingester's signature of {manifest.Id}");
        var existing = TryOpen(manifest.Id);
        if (existing is { IsComplete: true }) return existing;
        existing?.Dispose();
        string tmp = NewTempDirectory();
        try
        {
            string data = Path.Combine(tmp, StoredContent.DataFile);
            if (!NativeFile.TryHardLink(live.DataPath, data)) File.Copy(live.DataPath, data);
            File.WriteAllBytes(Path.Combine(tmp, StoredContent.ManifestFile), manifest.Encoded);
            File.WriteAllBytes(Path.Combine(tmp, StoredContent.SignatureFile), signature);
            byte[] records = new byte[manifest.PieceCount * 4];
            for (int i = 0; i < manifest.PieceCount; i++) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(records.AsSpan(i * 4), i);
            File.WriteAllBytes(Path.Combine(tmp, StoredContent.JournalFile), records);
            var info = new FileInfo(data);
            File.WriteAllText(Path.Combine(tmp, StoredContent.StampFile), $"{info.Length} {info.LastWriteTimeUtc.Ticks}");
            return InstallIngested(tmp, manifest);
        }
        catch
        {
            TryDeleteDirectory(tmp);
            throw;
        }
    }

    /// <summary>
    /// Ingests a local file: copies it into the store while hashing each piece, signs the manifest with the node key,
    /// and returns the complete entry. Reports bytes processed through <paramref name="progress"/>.
    /// </summary>
    public async Task<StoredContent> IngestFileAsync(string sourcePath, NodeKey key, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        using var source = new FileStream(sourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        return await IngestAsync(source, source.Length, sourcePath, key, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Ingests <paramref name="length"/> bytes from a stream (a file, an HTTP response): copies them into the store while
    /// hashing each piece, signs the manifest, and returns the complete entry. <paramref name="sourcePath"/> names the
    /// source in errors.
    /// </summary>
    public async Task<StoredContent> IngestAsync(Stream source, long length, string sourcePath, NodeKey key, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var layout = PieceLayout.For(length);
        string tmp = NewTempDirectory();
        try
        {
            byte[] hashes = new byte[layout.PieceCount * Hash256.Size];
            long free = new DriveInfo(tmp).AvailableFreeSpace;
            if (free < length)
                throw new IOException($"not enough disk space to ingest {sourcePath}: it needs {length:N0} bytes and {Root} has {free:N0} free. Free disk space or use a --data-dir on a larger disk.");
            using (var data = File.OpenHandle(Path.Combine(tmp, StoredContent.DataFile), FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                byte[] buffer = ArrayPool<byte>.Shared.Rent(layout.PieceSize);
                try
                {
                    for (int piece = 0; piece < layout.PieceCount; piece++)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        int pieceLength = layout.PieceLength(piece);
                        var span = buffer.AsMemory(0, pieceLength);
                        await source.ReadExactlyAsync(span, cancellationToken).ConfigureAwait(false);
                        SHA256.HashData(span.Span, hashes.AsSpan(piece * Hash256.Size, Hash256.Size));
                        RandomAccess.Write(data, span.Span, layout.PieceOffset(piece));
                        progress?.Report(layout.PieceOffset(piece) + pieceLength);
                    }
                }
                catch (EndOfStreamException e)
                {
                    throw new IOException($"{sourcePath} ended before its {length:N0} bytes (it shrank, or the connection broke); try again", e);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                RandomAccess.FlushToDisk(data);
            }
            var manifest = new Manifest(length, layout.PieceSize, hashes, key.PublicKey);
            byte[] signature = key.Sign(manifest.SignedPayload());
            File.WriteAllBytes(Path.Combine(tmp, StoredContent.ManifestFile), manifest.Encoded);
            File.WriteAllBytes(Path.Combine(tmp, StoredContent.SignatureFile), signature);
            using (var journal = new FileStream(Path.Combine(tmp, StoredContent.JournalFile), FileMode.CreateNew, FileAccess.Write))
            {
                byte[] records = new byte[layout.PieceCount * 4];
                for (int i = 0; i < layout.PieceCount; i++) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(records.AsSpan(i * 4), i);
                journal.Write(records);
                journal.Flush(flushToDisk: true);
            }
            var info = new FileInfo(Path.Combine(tmp, StoredContent.DataFile));
            File.WriteAllText(Path.Combine(tmp, StoredContent.StampFile), $"{info.Length} {info.LastWriteTimeUtc.Ticks}");
            return InstallIngested(tmp, manifest);
        }
        catch
        {
            TryDeleteDirectory(tmp);
            throw;
        }
    }

    private StoredContent InstallIngested(string tmp, Manifest manifest)
    {
        string target = EntryDirectory(manifest.Id);
        if (Directory.Exists(target))
        {
            var existing = TryOpen(manifest.Id);
            if (existing is { IsComplete: true })
            {
                TryDeleteDirectory(tmp);
                return existing;
            }
            existing?.Dispose();
            // A partial download of the same content: the fresh ingest is complete, so it replaces it.
            string old = NewTempDirectory();
            Directory.Delete(old);
            Directory.Move(target, old);
            TryDeleteDirectory(old);
        }
        Directory.Move(tmp, target);
        return TryOpen(manifest.Id)!;
    }

    private string NewTempDirectory()
    {
        string dir = Path.Combine(TempRoot, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static void TryDeleteDirectory(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
