using Swarm.Core.Sources;
using System.Buffers.Binary;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Storage;

public sealed class ContentStoreTests : IDisposable
{
    private const int PieceSize = 256 * 1024;
    /// <summary>5 pieces of 256 KiB, the last one 12,345 bytes.</summary>
    private const long Length = 4L * PieceSize + 12_345;

    private readonly TempDirectory _dir = new();
    private readonly NodeKey _key = NodeKey.Generate();
    private readonly string _source;
    private readonly byte[] _original;

    public ContentStoreTests()
    {
        _source = _dir.WriteRandomFile("source.bin", Length, seed: 21);
        _original = File.ReadAllBytes(_source);
    }

    public void Dispose()
    {
        _key.Dispose();
        _dir.Dispose();
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<(Manifest Manifest, byte[] Signature)> IngestElsewhereAsync()
    {
        var store = new ContentStore(_dir.Combine("origin"));
        using var content = await Ingest.FileAsync(store, _source, _key, null, Ct);
        return (content.Manifest, content.Signature);
    }

    /// <summary>An empty entry in a fresh store, as a downloader creates it from a peer's manifest.</summary>
    private async Task<(ContentStore Store, StoredContent Content)> EmptyEntryAsync()
    {
        var (manifest, signature) = await IngestElsewhereAsync();
        var store = new ContentStore(_dir.Combine("downloader"));
        return (store, store.OpenOrCreate(manifest, signature));
    }

    private ReadOnlySpan<byte> Piece(PieceLayout layout, int piece) => _original.AsSpan((int)layout.PieceOffset(piece), layout.PieceLength(piece));

    private static string JournalPath(StoredContent c) => Path.Combine(c.Directory, "pieces");

    private static int[] Journal(StoredContent c)
    {
        if (!File.Exists(JournalPath(c))) return [];
        byte[] bytes = File.ReadAllBytes(JournalPath(c));
        return [.. Enumerable.Range(0, bytes.Length / 4).Select(i => BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i * 4)))];
    }

    private static int[] VerifiedPieces(StoredContent c) => [.. Enumerable.Range(0, c.Layout.PieceCount).Where(i => c.Verified[i])];

    [Fact]
    public async Task Ingest_then_TryOpen_gives_a_complete_entry()
    {
        var store = new ContentStore(_dir.Combine("store"));
        var progress = new List<long>();
        ContentId id;
        using (var ingested = await Ingest.FileAsync(store, _source, _key, new SyncProgress(progress), Ct))
        {
            id = ingested.Id;
            Assert.True(ingested.IsComplete);
            Assert.Equal(Length, ingested.Manifest.Length);
            Assert.Equal(PieceSize, ingested.Manifest.PieceSize);
            Assert.Equal(_key.PublicKey, ingested.Manifest.IngesterKey);
            Assert.True(ingested.Manifest.VerifySignature(ingested.Signature));
        }
        Assert.Equal(Length, progress[^1]);
        Assert.Equal(progress.Order().ToList(), progress);

        using var opened = store.TryOpen(id);
        Assert.NotNull(opened);
        Assert.True(opened.IsComplete);
        Assert.Equal(5, opened.Verified.Count);
        Assert.Equal(Length, opened.VerifiedBytes);
        Assert.True(opened.Manifest.VerifySignature(opened.Signature));
        Assert.Equal(_original, File.ReadAllBytes(opened.DataPath));
        var buffer = new byte[1000];
        opened.Read(Length - 1000, buffer);
        Assert.Equal(_original[^1000..], buffer);
        for (int p = 0; p < opened.Layout.PieceCount; p++) Assert.True(opened.Manifest.VerifyPiece(p, Piece(opened.Layout, p)));
        Assert.Empty(Directory.EnumerateFileSystemEntries(store.TempRoot)); // nothing left behind
        Assert.Null(store.TryOpen(new ContentId(Hash256.Random())));
    }

    [Fact]
    public async Task Ingesting_the_same_file_twice_gives_the_same_complete_entry()
    {
        var store = new ContentStore(_dir.Combine("store"));
        using var first = await Ingest.FileAsync(store, _source, _key, null, Ct);
        using var second = await Ingest.FileAsync(store, _source, _key, null, Ct);
        Assert.Equal(first.Id, second.Id);
        Assert.True(second.IsComplete);
        Assert.Single(Directory.GetDirectories(store.ContentRoot));
        Assert.Empty(Directory.EnumerateFileSystemEntries(store.TempRoot));
    }

    [Fact]
    public async Task Empty_file_ingests_and_exports()
    {
        var store = new ContentStore(_dir.Combine("store"));
        string empty = _dir.Combine("empty.bin");
        await File.WriteAllBytesAsync(empty, [], Ct);
        using var content = await Ingest.FileAsync(store, empty, _key, null, Ct);
        Assert.True(content.IsComplete);
        Assert.Equal(0, content.Layout.PieceCount);
        using var opened = store.TryOpen(content.Id)!;
        Assert.True(opened.IsComplete);
        string output = _dir.Combine("out", "empty.bin");
        opened.Export(output);
        Assert.Empty(File.ReadAllBytes(output));
    }

    [Fact]
    public async Task TryCommitPiece_refuses_a_wrong_piece_and_writes_nothing()
    {
        var (_, content) = await EmptyEntryAsync();
        using (content)
        {
            Assert.False(content.IsComplete);
            Assert.Equal(0, content.Verified.Count);
            var layout = content.Layout;
            long offset = layout.PieceOffset(1);
            byte[] before = File.ReadAllBytes(content.DataPath);
            Assert.Equal(Length, before.Length); // preallocated
            bool journalExisted = File.Exists(JournalPath(content));
            byte[] journalBefore = journalExisted ? File.ReadAllBytes(JournalPath(content)) : [];
            var events = new List<int>();
            content.PieceVerified += events.Add;

            byte[] wrong = Piece(layout, 1).ToArray();
            wrong[1000] ^= 0x55;
            Assert.False(content.TryCommitPiece(1, wrong));                      // one byte off
            Assert.False(content.TryCommitPiece(1, Piece(layout, 2)));           // another piece's data
            Assert.False(content.TryCommitPiece(1, Piece(layout, 1)[..^1]));     // too short
            Assert.False(content.TryCommitPiece(4, Piece(layout, 1)));           // too long for the last piece
            Assert.False(content.TryCommitPiece(4, new byte[layout.PieceLength(4)]));

            Assert.Equal(before, File.ReadAllBytes(content.DataPath));
            Assert.Equal(journalExisted, File.Exists(JournalPath(content)));
            if (journalExisted) Assert.Equal(journalBefore, File.ReadAllBytes(JournalPath(content)));
            Assert.Equal(0, content.Verified.Count);
            Assert.Empty(events);

            Assert.True(content.TryCommitPiece(1, Piece(layout, 1)));
            byte[] after = File.ReadAllBytes(content.DataPath);
            Assert.True(after.AsSpan((int)offset, PieceSize).SequenceEqual(Piece(layout, 1)));
            Assert.True(after.AsSpan(0, (int)offset).SequenceEqual(before.AsSpan(0, (int)offset)));
            Assert.True(after.AsSpan((int)offset + PieceSize).SequenceEqual(before.AsSpan((int)offset + PieceSize)));
            Assert.Equal([1], Journal(content));
            Assert.Equal([1], VerifiedPieces(content));
            Assert.Equal(PieceSize, content.VerifiedBytes);
            Assert.Equal([1], events);

            // Committing it again changes nothing and records nothing twice.
            Assert.True(content.TryCommitPiece(1, Piece(layout, 1)));
            Assert.Equal([1], Journal(content));
            Assert.Equal([1], events);
        }
    }

    [Fact]
    public async Task Verified_pieces_survive_a_reopen()
    {
        var (store, content) = await EmptyEntryAsync();
        var layout = content.Layout;
        using (content)
        {
            Assert.True(content.TryCommitPiece(4, Piece(layout, 4)));
            Assert.True(content.TryCommitPiece(0, Piece(layout, 0)));
            Assert.True(content.TryCommitPiece(2, Piece(layout, 2)));
        }
        using (var reopened = store.TryOpen(content.Id)!)
        {
            Assert.Equal([0, 2, 4], VerifiedPieces(reopened));
            Assert.False(reopened.IsComplete);
            var buffer = new byte[layout.PieceLength(2)];
            reopened.Read(layout.PieceOffset(2), buffer);
            Assert.True(buffer.AsSpan().SequenceEqual(Piece(layout, 2)));
            Assert.True(reopened.TryCommitPiece(1, Piece(layout, 1)));
            Assert.True(reopened.TryCommitPiece(3, Piece(layout, 3)));
            Assert.True(reopened.IsComplete);
        }
        using var complete = store.TryOpen(content.Id)!;
        Assert.True(complete.IsComplete);
        Assert.Equal(_original, File.ReadAllBytes(complete.DataPath));
    }

    [Fact]
    public async Task Journal_with_a_partial_trailing_record_still_loads_and_appends_cleanly()
    {
        var (store, content) = await EmptyEntryAsync();
        var layout = content.Layout;
        using (content)
        {
            Assert.True(content.TryCommitPiece(0, Piece(layout, 0)));
            Assert.True(content.TryCommitPiece(3, Piece(layout, 3)));
        }
        // A kill in the middle of appending the record for piece 2: two of its four bytes made it to disk.
        using (var journal = new FileStream(JournalPath(content), FileMode.Append))
            journal.Write([0x02, 0x00]);
        Assert.Equal(10, new FileInfo(JournalPath(content)).Length);

        using (var reopened = store.TryOpen(content.Id)!)
        {
            Assert.Equal([0, 3], VerifiedPieces(reopened));
            Assert.True(reopened.TryCommitPiece(2, Piece(layout, 2)));
            Assert.Equal([0, 3, 2], Journal(reopened)); // the partial record was cut off, not glued to the new one
            Assert.Equal(12, new FileInfo(JournalPath(reopened)).Length);
        }
        using var again = store.TryOpen(content.Id)!;
        Assert.Equal([0, 2, 3], VerifiedPieces(again));
    }

    [Fact]
    public async Task Journal_records_for_pieces_that_do_not_exist_are_ignored()
    {
        var (store, content) = await EmptyEntryAsync();
        var layout = content.Layout;
        using (content) Assert.True(content.TryCommitPiece(1, Piece(layout, 1)));
        var bogus = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(bogus, 5);
        BinaryPrimitives.WriteInt32LittleEndian(bogus.AsSpan(4), -1);
        using (var journal = new FileStream(JournalPath(content), FileMode.Append)) journal.Write(bogus);
        using var reopened = store.TryOpen(content.Id)!;
        Assert.Equal([1], VerifiedPieces(reopened));
    }

    [Fact]
    public async Task Export_makes_the_file_appear_atomically_with_identical_content()
    {
        var store = new ContentStore(_dir.Combine("store"));
        using var content = await Ingest.FileAsync(store, _source, _key, null, Ct);
        string outDir = _dir.Combine("out");
        Directory.CreateDirectory(outDir);
        string output = Path.Combine(outDir, "file.bin");

        var events = new List<string>();
        using (var watcher = new FileSystemWatcher(outDir) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.LastWrite })
        {
            watcher.Created += (_, e) => { lock (events) events.Add($"created {e.Name}"); };
            watcher.Changed += (_, e) => { lock (events) events.Add($"changed {e.Name}"); };
            watcher.Renamed += (_, e) => { lock (events) events.Add($"renamed {e.OldName} -> {e.Name}"); };
            watcher.EnableRaisingEvents = true;
            content.Export(output);
            await Poll.UntilAsync(() => { lock (events) return events.Any(e => e.EndsWith("-> file.bin", StringComparison.Ordinal)); }, TimeSpan.FromSeconds(5), "the rename into place");
        }
        lock (events)
        {
            // The final name is only ever the target of a rename: never created empty, never written in place.
            Assert.DoesNotContain(events, e => e is "created file.bin" or "changed file.bin");
        }
        Assert.Equal([output], Directory.GetFiles(outDir));
        Assert.Equal(_original, File.ReadAllBytes(output));

        // Over an existing, unrelated file: replaced whole, still no temp files.
        string other = Path.Combine(outDir, "other.bin");
        await File.WriteAllTextAsync(other, "old", Ct);
        content.Export(other);
        Assert.Equal([output, other], Directory.GetFiles(outDir).Order());
        Assert.Equal(_original, File.ReadAllBytes(other));

        // Into a directory that does not exist yet.
        string nested = _dir.Combine("a", "b", "c.bin");
        content.Export(nested);
        Assert.Equal(_original, File.ReadAllBytes(nested));
        Assert.Equal([nested], Directory.GetFiles(Path.GetDirectoryName(nested)!));
    }

    [Fact]
    public async Task An_exported_file_written_in_place_is_detected_and_never_served_or_exported()
    {
        var store = new ContentStore(_dir.Combine("store"));
        var content = await Ingest.FileAsync(store, _source, _key, null, Ct);
        string output = _dir.Combine("out", "file.bin");
        content.Export(output);

        // Exports are hard links to the store's data: writing one in place changes the stored bytes.
        await using (var fs = new FileStream(output, FileMode.Open, FileAccess.Write))
        {
            fs.Position = 10;
            fs.WriteByte(0xEE);
        }
        File.SetLastWriteTimeUtc(output, DateTime.UtcNow.AddMinutes(1)); // make the change visible even within one timestamp tick

        Assert.Throws<ContentModifiedException>(() => content.Export(_dir.Combine("out", "again.bin")));
        Assert.Throws<ContentModifiedException>(() => content.Read(0, new byte[16]));
        content.Dispose();

        // Reopening re-hashes the data: the damaged piece is no longer verified, the rest still is.
        using var reopened = store.TryOpen(content.Id)!;
        Assert.False(reopened.IsComplete);
        Assert.False(reopened.Verified[0]);
        Assert.Equal(reopened.Layout.PieceCount - 1, reopened.Verified.Count);
    }

    [Fact]
    public async Task Export_of_incomplete_content_throws_and_leaves_nothing()
    {
        var (_, content) = await EmptyEntryAsync();
        using (content)
        {
            Assert.True(content.TryCommitPiece(0, Piece(content.Layout, 0)));
            string outDir = _dir.Combine("out");
            Directory.CreateDirectory(outDir);
            string output = Path.Combine(outDir, "file.bin");
            var e = Assert.Throws<InvalidOperationException>(() => content.Export(output));
            Assert.Contains("1/5", e.Message);
            Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
        }
    }

    [Fact]
    public async Task A_second_writer_on_the_same_entry_is_refused_with_a_clear_message()
    {
        var (store, content) = await EmptyEntryAsync();
        using (content)
        {
            content.AcquireWriter();
            content.AcquireWriter(); // idempotent for the holder
            using var second = store.TryOpen(content.Id)!;
            var e = Assert.Throws<StoreBusyException>(second.AcquireWriter);
            Assert.Contains("another swarm process", e.Message);
            Assert.Contains(content.Directory, e.Message);
        }
        // Released on dispose: a new instance may write.
        using var third = store.TryOpen(content.Id)!;
        third.AcquireWriter();
    }

    [Fact]
    public async Task Entry_whose_manifest_belongs_to_another_id_is_not_trusted_and_does_not_block_the_id()
    {
        var (store, content) = await EmptyEntryAsync();
        content.Dispose();
        var otherId = new ContentId(Hash256.Random());
        Directory.Move(content.Directory, Path.Combine(store.ContentRoot, otherId.Hex));
        // Issue #13: set aside (manifest dropped, one warning) instead of an error that blocked the id until removed by hand.
        Assert.Null(store.TryOpen(otherId));
        Assert.False(File.Exists(Path.Combine(store.ContentRoot, otherId.Hex, "manifest")));
        Assert.DoesNotContain(otherId, store.List());
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; posts to the thread pool, which would make the order racy).</summary>
    private sealed class SyncProgress(List<long> values) : IProgress<long>
    {
        public void Report(long value) => values.Add(value);
    }
}
