using System.Buffers;
using System.Security.Cryptography;
using Swarm.Core.Content;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Identity;

namespace Swarm.Core.Storage;

/// <summary>
/// The node's content store: <c>&lt;root&gt;/content/&lt;id hex&gt;/</c> holds each item's manifest, signature, data file and
/// journal of verified pieces. Items are created under a temporary name and renamed into place, so a
/// directory with a manifest is always a whole, valid entry.
/// </summary>
public sealed class ContentStore
{
    public ContentStore(string root, ILogger? logger = null)
    {
        Logger = logger ?? NullLogger.Instance;
        Root = Path.GetFullPath(root);
        ContentRoot = Path.Combine(Root, "content");
        TempRoot = Path.Combine(Root, "tmp");
        Directory.CreateDirectory(ContentRoot);
        Directory.CreateDirectory(TempRoot);
    }

    /// <summary>Where the store reports entries it repaired or set aside (a lost journal, a damaged manifest).</summary>
    public ILogger Logger { get; }
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

    /// <summary>
    /// Opens an entry if the store has its manifest; null otherwise. An entry whose manifest or signature is missing,
    /// unreadable, for another id or not the ingester's is never trusted: its manifest, signature, journal and stamp are
    /// set aside (one warning), so the id is not blocked: the next manifest a peer sends for it rebuilds the entry around
    /// the kept data file, which is then re-hashed (<see cref="OpenOrCreate"/>).
    /// </summary>
    public StoredContent? TryOpen(ContentId id) => TryOpen(id, rebuilding: false);

    private StoredContent? TryOpen(ContentId id, bool rebuilding)
    {
        string dir = EntryDirectory(id);
        string manifestPath = Path.Combine(dir, StoredContent.ManifestFile);
        if (!File.Exists(manifestPath)) return null;
        string? damage;
        Manifest? manifest = null;
        byte[]? signature = null;
        try
        {
            manifest = Manifest.Decode(File.ReadAllBytes(manifestPath));
            string signaturePath = Path.Combine(dir, StoredContent.SignatureFile);
            if (manifest.Id != id) damage = $"its manifest is for another id ({manifest.Id})";
            else if (!File.Exists(signaturePath)) damage = "its signature file is missing";
            else if (!manifest.IsLive && !manifest.VerifySignature(signature = File.ReadAllBytes(signaturePath))) damage = "its signature is not the ingester's";
            else damage = null;
            signature ??= manifest.IsLive ? File.ReadAllBytes(signaturePath) : null;
        }
        catch (InvalidDataException e)
        {
            damage = "its manifest is unreadable (" + e.Message + ")";
        }
        if (damage != null)
        {
            SetAside(dir, id, damage);
            return null;
        }
        var content = new StoredContent(dir, manifest!, signature!);
        if (content.RebuiltJournal && !rebuilding)
            Logger.LogWarning("store entry {Id} had lost its journal; re-hashed its data file instead of fetching it again: {Verified}/{Pieces} pieces intact",
                id.ToUri(), content.Verified.Count, content.Layout.PieceCount);
        return content;
    }

    /// <summary>Drops the untrusted metadata of a damaged entry, keeping its data file for a rebuild.</summary>
    private void SetAside(string dir, ContentId id, string damage)
    {
        foreach (string name in new[] { StoredContent.ManifestFile, StoredContent.SignatureFile, StoredContent.JournalFile, StoredContent.StampFile, StoredContent.PieceHashesFile })
        {
            try { File.Delete(Path.Combine(dir, name)); } catch (IOException) { }
        }
        Logger.LogWarning("store entry {Id} is damaged: {Damage}; it is no longer served, and its data is kept and re-hashed when the manifest is fetched from a peer again (the next 'swarm get' of it)", id.ToUri(), damage);
    }

    /// <summary>
    /// Opens the entry for a manifest received from a peer, creating it if needed. The signature must already be checked.
    /// An entry directory without a usable manifest (deleted or set aside as damaged) is rebuilt in place: the manifest and
    /// signature are written again and its data file, if any, is kept and re-hashed (its journal counts as lost).
    /// </summary>
    public StoredContent OpenOrCreate(Manifest manifest, byte[] signature)
    {
        var existing = TryOpen(manifest.Id);
        if (existing != null) return existing;
        string target = EntryDirectory(manifest.Id);
        if (Directory.Exists(target)) return Rebuild(target, manifest, signature);
        string tmp = NewTempDirectory();
        File.WriteAllBytes(Path.Combine(tmp, StoredContent.ManifestFile), manifest.Encoded);
        File.WriteAllBytes(Path.Combine(tmp, StoredContent.SignatureFile), signature);
        try
        {
            Directory.Move(tmp, target);
        }
        catch (IOException) when (Directory.Exists(target))
        {
            Directory.Delete(tmp, recursive: true); // another process created it first
        }
        return TryOpen(manifest.Id) ?? throw new IOException($"could not create store entry for {manifest.Id} in {ContentRoot}; check that the data directory is writable");
    }

    private StoredContent Rebuild(string dir, Manifest manifest, byte[] signature)
    {
        // The journal and stamp belonged to a manifest that was lost: without them the data file is re-hashed whole.
        foreach (string name in new[] { StoredContent.JournalFile, StoredContent.StampFile, StoredContent.PieceHashesFile })
            File.Delete(Path.Combine(dir, name));
        File.WriteAllBytes(Path.Combine(dir, StoredContent.SignatureFile + ".tmp"), signature);
        File.Move(Path.Combine(dir, StoredContent.SignatureFile + ".tmp"), Path.Combine(dir, StoredContent.SignatureFile), overwrite: true);
        // The manifest last: a directory with a manifest is a whole entry.
        File.WriteAllBytes(Path.Combine(dir, StoredContent.ManifestFile + ".tmp"), manifest.Encoded);
        File.Move(Path.Combine(dir, StoredContent.ManifestFile + ".tmp"), Path.Combine(dir, StoredContent.ManifestFile), overwrite: true);
        var content = TryOpen(manifest.Id, rebuilding: true) ?? throw new IOException($"could not rebuild store entry {dir} for {manifest.Id}; remove the directory and fetch again");
        Logger.LogWarning("store entry {Id} had no usable manifest; rebuilt it from the manifest a peer sent, {Kept}", manifest.Id.ToUri(),
            content.RebuiltJournal ? $"and re-hashed its data file: {content.Verified.Count}/{content.Layout.PieceCount} pieces intact" : "with no data kept");
        return content;
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
    /// Starts a new entry of <paramref name="length"/> bytes under a temporary name (<paramref name="shown"/> names its
    /// source in errors): the caller writes its bytes and installs it with its signed manifest.
    /// </summary>
    public IngestStaging BeginIngest(long length, string shown)
    {
        string tmp = NewTempDirectory();
        try
        {
            long free = new DriveInfo(tmp).AvailableFreeSpace;
            if (free < length)
                throw new InsufficientSpaceException($"not enough disk space to ingest {shown}: it needs {length:N0} bytes and {Root} has {free:N0} free");
            return new IngestStaging(this, tmp, length);
        }
        catch
        {
            TryDeleteDirectory(tmp);
            throw;
        }
    }

    /// <summary>Moves a staged entry (data, manifest, signature, journal and stamp written) into place.</summary>
    internal StoredContent InstallStaged(string tmp, Manifest manifest) => InstallIngested(tmp, manifest);

    internal static void DeleteStaged(string tmp) => TryDeleteDirectory(tmp);

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
