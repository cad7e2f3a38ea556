using Microsoft.Win32.SafeHandles;
using Swarm.Core.Content;

namespace Swarm.Core.Storage;

/// <summary>
/// A new store entry being written under a temporary name (<see cref="ContentStore.BeginIngest"/>): its data file is
/// written piece by piece, then <see cref="Install"/> adds the signed manifest, a full journal and the stamp and moves it
/// into place. Disposed without being installed, it leaves nothing behind.
/// </summary>
public sealed class IngestStaging : IDisposable
{
    private readonly ContentStore _store;
    private readonly string _directory;
    private readonly PieceLayout _layout;
    private readonly UnitTags _tags;
    private SafeFileHandle? _data;
    private bool _installed;

    internal IngestStaging(ContentStore store, string directory, long length)
    {
        _store = store;
        _directory = directory;
        _layout = PieceLayout.For(length);
        _tags = new UnitTags(_layout.PieceCount);
        _data = File.OpenHandle(Path.Combine(directory, StoredContent.DataFile), FileMode.CreateNew, FileAccess.Write, FileShare.None);
    }

    /// <summary>
    /// Writes one whole piece of the entry, which the caller hashes for the manifest. Its unit tags are recorded too, so the
    /// installed entry serves it without hashing it again (<see cref="UnitTags"/>).
    /// </summary>
    public void WritePiece(int piece, ReadOnlySpan<byte> data)
    {
        if (data.Length != _layout.PieceLength(piece)) throw new ArgumentException($"piece {piece} is {_layout.PieceLength(piece)} bytes, not {data.Length}");
        RandomAccess.Write(_data ?? throw new InvalidOperationException("the staged entry is closed"), data, _layout.PieceOffset(piece));
        _tags.Record(piece, data);
    }

    /// <summary>Flushes the data, writes the manifest, its signature, a journal of every piece and the stamp, and installs the entry.</summary>
    public StoredContent Install(Manifest manifest, byte[] signature)
    {
        if (_data == null) throw new InvalidOperationException("the staged entry is closed");
        RandomAccess.FlushToDisk(_data);
        _data.Dispose();
        _data = null;
        File.WriteAllBytes(Path.Combine(_directory, StoredContent.ManifestFile), manifest.Encoded);
        File.WriteAllBytes(Path.Combine(_directory, StoredContent.SignatureFile), signature);
        using (var journal = new FileStream(Path.Combine(_directory, StoredContent.JournalFile), FileMode.CreateNew, FileAccess.Write))
        {
            byte[] records = new byte[manifest.PieceCount * 4];
            for (int i = 0; i < manifest.PieceCount; i++) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(records.AsSpan(i * 4), i);
            journal.Write(records);
            journal.Flush(flushToDisk: true);
        }
        var info = new FileInfo(Path.Combine(_directory, StoredContent.DataFile));
        File.WriteAllText(Path.Combine(_directory, StoredContent.StampFile), $"{info.Length} {info.LastWriteTimeUtc.Ticks}");
        var content = _store.InstallStaged(_directory, manifest);
        _installed = true;
        if (manifest.PieceSize == _layout.PieceSize && manifest.PieceCount == _layout.PieceCount) content.AdoptUnitTags(_tags);
        return content;
    }

    public void Dispose()
    {
        _tags.Dispose();
        _data?.Dispose();
        _data = null;
        if (!_installed) ContentStore.DeleteStaged(_directory);
    }
}
