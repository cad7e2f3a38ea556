using Swarm.Core.Sources;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Storage;

/// <summary>
/// Issue #13, at rest: bytes that change on disk after they were verified (size and modification time unchanged) never
/// leave the store — not through the verified read peers and the mirror use, not into an exported file — and the store
/// recovers by itself from a lost journal or a damaged manifest.
/// </summary>
public sealed class AtRestIntegrityTests : IDisposable
{
    private const int Size = 3 * 1024 * 1024 + 12345; // 256 KiB pieces: 13 pieces, the last one short
    private readonly TempDirectory _dir = new();
    private readonly NodeKey _key;
    private readonly string _source;
    private readonly byte[] _original;

    public AtRestIntegrityTests()
    {
        _key = NodeKey.LoadOrCreate(_dir.Combine("key"));
        _source = _dir.WriteRandomFile("source.bin", Size, seed: 13);
        _original = File.ReadAllBytes(_source);
    }

    public void Dispose()
    {
        _key.Dispose();
        _dir.Dispose();
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<(ContentStore Store, StoredContent Content)> SeedAsync(string name = "store")
    {
        var store = new ContentStore(_dir.Combine(name));
        return (store, await Ingest.FileAsync(store, _source, _key, null, Ct));
    }

    [Fact]
    public async Task Verified_read_of_a_piece_whose_bytes_flipped_on_disk_throws_drops_the_piece_and_rewrites_the_journal()
    {
        var (store, content) = await SeedAsync();
        int rottenPiece = 5;
        long at = content.Layout.PieceOffset(rottenPiece) + 1000;
        Rot.FlipByte(content.DataPath, at);
        var raised = new List<int>();
        content.PieceRotten += raised.Add;

        var block = new byte[PieceLayout.BlockSize];
        var e = Assert.Throws<PieceRottenException>(() => content.ReadVerified(content.Layout.PieceOffset(rottenPiece), block));
        Assert.Equal([rottenPiece], e.Pieces);
        Assert.Contains($"piece {rottenPiece}", e.Message);
        Assert.False(content.Verified[rottenPiece]);
        Assert.False(content.IsComplete);
        Assert.Equal([rottenPiece], raised);
        Assert.DoesNotContain(rottenPiece, Rot.Journal(content.Directory));
        Assert.Equal(content.Layout.PieceCount - 1, Rot.Journal(content.Directory).Length);
        Assert.False(File.Exists(Path.Combine(content.Directory, "stamp")), "an incomplete entry has no stamp");
        // Asked again: refused the same way, and the drop is reported once.
        Assert.Throws<PieceRottenException>(() => content.ReadVerified(content.Layout.PieceOffset(rottenPiece), block));
        Assert.Equal([rottenPiece], raised);
        // Other pieces are still served, byte for byte.
        Assert.Equal(PieceLayout.BlockSize, content.ReadVerified(0, block));
        Assert.True(_original.AsSpan(0, block.Length).SequenceEqual(block));
        content.Dispose();

        using var reopened = store.TryOpen(content.Id)!;
        Assert.False(reopened.Verified[rottenPiece]);
        Assert.Equal(content.Layout.PieceCount - 1, reopened.Verified.Count);
    }

    [Theory]
    [InlineData(0, PieceLayout.BlockSize)]            // a wire block: hashed in the caller's buffer
    [InlineData(7, 100)]                               // a small unaligned range inside a unit
    [InlineData(PieceLayout.BlockSize - 10, 300_000)]  // an unaligned range across units and pieces
    public async Task Rot_after_the_first_read_is_caught_by_the_unit_tags(int offsetInPiece, int length)
    {
        var (_, content) = await SeedAsync();
        using var _ = content;
        int piece = 2;
        long start = content.Layout.PieceOffset(piece) + offsetInPiece;
        var buffer = new byte[length];
        // The pieces were tagged when they were ingested; this read checks the units against their tags.
        content.ReadVerified(start, buffer);
        Assert.True(_original.AsSpan((int)start, length).SequenceEqual(buffer));
        Rot.FlipByte(content.DataPath, start + length - 1);

        Assert.Throws<PieceRottenException>(() => content.ReadVerified(start, buffer));
        int rotten = (int)((start + length - 1) / content.Layout.PieceSize);
        Assert.False(content.Verified[rotten]);
        // The plain read is what used to serve: it returns the wrong byte, which is why nothing leaving the node uses it.
        var plain = new byte[1];
        content.Read(start + length - 1, plain);
        Assert.NotEqual(_original[start + length - 1], plain[0]);
    }

    [Fact]
    public async Task After_a_restart_a_pieces_first_read_hashes_it_against_the_manifest_and_catches_rot()
    {
        var (store, content) = await SeedAsync();
        content.Dispose(); // the unit tags recorded at ingest die with the process's view of the entry
        using var reopened = store.TryOpen(content.Id)!;
        int piece = 7;
        Rot.FlipByte(reopened.DataPath, reopened.Layout.PieceOffset(piece) + PieceLayout.BlockSize + 3);

        var block = new byte[PieceLayout.BlockSize];
        Assert.Throws<PieceRottenException>(() => reopened.ReadVerified(reopened.Layout.PieceOffset(piece), block));
        Assert.False(reopened.Verified[piece]);
        // A sound piece's first read tags it; rot after that is caught by the tags.
        reopened.ReadVerified(reopened.Layout.PieceOffset(3), block);
        Assert.True(_original.AsSpan((int)reopened.Layout.PieceOffset(3), block.Length).SequenceEqual(block));
        Rot.FlipByte(reopened.DataPath, reopened.Layout.PieceOffset(3) + 9);
        Assert.Throws<PieceRottenException>(() => reopened.ReadVerified(reopened.Layout.PieceOffset(3), block));
        Assert.Equal(reopened.Layout.PieceCount - 2, reopened.Verified.Count);
    }

    [Fact]
    public async Task Export_rehashes_stored_pieces_and_writes_nothing_when_one_rotted()
    {
        var (store, content) = await SeedAsync();
        int piece = content.Layout.PieceCount - 1;
        Rot.FlipByte(content.DataPath, content.Layout.PieceOffset(piece));
        string output = _dir.Combine("out", "file.bin");

        var e = Assert.Throws<PieceRottenException>(() => content.Export(output));
        Assert.Equal([piece], e.Pieces);
        Assert.Contains("failed its hash check in the store", e.Message);
        Assert.False(File.Exists(output));
        Assert.True(!Directory.Exists(_dir.Combine("out")) || Directory.GetFiles(_dir.Combine("out")).Length == 0, "no temporary file either");
        Assert.False(content.Verified[piece]);
        Assert.Throws<InvalidOperationException>(() => content.Export(output)); // incomplete now: still nothing
        content.Dispose();
        using var reopened = store.TryOpen(content.Id)!;
        Assert.False(reopened.IsComplete);
    }

    [Fact]
    public async Task Export_skips_only_the_pieces_the_caller_verified_in_memory()
    {
        var (_, content) = await SeedAsync();
        using var _ = content;
        Rot.FlipByte(content.DataPath, content.Layout.PieceOffset(4) + 5);
        var trusted = new Bitfield(content.Layout.PieceCount);
        trusted.Set(4);
        // The rotten piece counts as verified in memory by the caller: not re-hashed, so not found.
        Assert.Empty(content.CheckStoredPieces(trusted));
        // Every other caller pays the full pass and finds it.
        Assert.Equal([4], content.CheckStoredPieces(null));
        Assert.Equal(content.Layout.PieceCount - 1, content.Verified.Count);
        var none = content.VerifiedSince(content.Verified.Clone());
        Assert.True(none.IsEmpty);
        Assert.Equal(content.Verified.Count, content.VerifiedSince(null).Count);
    }

    [Fact]
    public async Task A_rotten_piece_is_fetched_again_from_an_honest_peer_and_the_entry_becomes_complete_with_a_new_stamp()
    {
        var ct = Ct;
        await using var honest = await SeededNode.StartAsync(Size, seed: 21);
        await using var rotten = new TestNode(new EngineOptions { DialAttempts = 2, StallTimeout = TimeSpan.FromSeconds(10) });
        var copy = await rotten.Engine.DownloadAsync(honest.Id, [honest.EndPoint], null, ct).WaitAsync(TimeSpan.FromSeconds(20), ct);
        Assert.True(copy.IsComplete);
        Rot.FlipByte(copy.DataPath, copy.Layout.PieceOffset(3) + 77);
        string output = Path.Combine(rotten.DataDirectory, "out.bin");

        Assert.Throws<PieceRottenException>(() => copy.Export(output));
        Assert.Equal(1, rotten.Engine.PiecesRotten);
        var repaired = await rotten.Engine.DownloadAsync(honest.Id, [honest.EndPoint], null, ct).WaitAsync(TimeSpan.FromSeconds(20), ct);
        Assert.Same(copy, repaired);
        Assert.True(repaired.IsComplete);
        Assert.True(File.Exists(Path.Combine(repaired.Directory, "stamp")), "completing again writes the stamp again");
        repaired.Export(output);
        Assert.Equal(honest.Original, File.ReadAllBytes(output));
        Assert.Equal(copy.Layout.PieceCount, Rot.Journal(copy.Directory).Distinct().Count());
    }

    [Fact]
    public async Task A_peer_fetching_from_a_node_with_a_rotten_piece_gets_only_right_bytes_and_does_not_ban_it()
    {
        var ct = Ct;
        await using var honest = await SeededNode.StartAsync(Size, seed: 22);
        await using var rotten = new TestNode();
        var copy = await rotten.Engine.DownloadAsync(honest.Id, [honest.EndPoint], null, ct).WaitAsync(TimeSpan.FromSeconds(20), ct);
        for (int p = 0; p < copy.Layout.PieceCount; p += 2) Rot.FlipByte(copy.DataPath, copy.Layout.PieceOffset(p) + 9);

        int odd = Enumerable.Range(0, copy.Layout.PieceCount).Count(p => p % 2 == 1);

        // From the rotten node alone: the pieces that did not rot arrive, the rotten ones are refused, never sent wrong.
        await using var leech = new TestNode(new EngineOptions { DialAttempts = 2, StallTimeout = TimeSpan.FromSeconds(4) });
        await Assert.ThrowsAsync<PeerUnavailableException>(() => leech.Engine.DownloadAsync(honest.Id, [rotten.EndPoint], null, ct).WaitAsync(TimeSpan.FromSeconds(30), ct));
        Assert.Equal(0, leech.Engine.PiecesFailed);
        Assert.False(leech.Engine.Bans.IsBanned(rotten.Key.NodeId), "the rotten node never sent a bad piece");
        Assert.Equal(odd, leech.Engine.PiecesVerified);
        Assert.True(rotten.Engine.PiecesRotten >= 1, "the rotten node noticed when it was asked");
        Assert.All(Enumerable.Range(0, copy.Layout.PieceCount).Where(p => p % 2 == 1), p => Assert.True(copy.Verified[p], $"piece {p} did not rot"));

        // With an honest peer too, it completes with the right bytes.
        var got = await leech.Engine.DownloadAsync(honest.Id, [rotten.EndPoint, honest.EndPoint], null, ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
        string output = Path.Combine(leech.DataDirectory, "out.bin");
        got.Export(output);
        Assert.Equal(honest.Original, File.ReadAllBytes(output));
        Assert.Equal(0, leech.Engine.PiecesFailed);
        Assert.False(leech.Engine.Bans.IsBanned(rotten.Key.NodeId));
    }

    [Fact]
    public async Task A_lost_journal_rehashes_the_data_instead_of_refetching()
    {
        var (store, content) = await SeedAsync();
        string dir = content.Directory;
        Rot.FlipByte(content.DataPath, content.Layout.PieceOffset(1));
        content.Dispose();
        File.Delete(Path.Combine(dir, "pieces"));

        using var reopened = store.TryOpen(content.Id)!;
        Assert.True(reopened.RebuiltJournal);
        Assert.Equal(content.Layout.PieceCount - 1, reopened.Verified.Count);
        Assert.False(reopened.Verified[1], "the re-hash keeps only pieces that match");
        Assert.Equal(Enumerable.Range(0, content.Layout.PieceCount).Where(i => i != 1), Rot.Journal(dir).Order());
    }

    [Fact]
    public async Task A_lost_journal_of_intact_content_gives_a_complete_entry_that_exports()
    {
        var (store, content) = await SeedAsync();
        content.Dispose();
        File.Delete(Path.Combine(content.Directory, "pieces"));
        using var reopened = store.TryOpen(content.Id)!;
        Assert.True(reopened.IsComplete);
        string output = _dir.Combine("out.bin");
        reopened.Export(output);
        Assert.Equal(_original, File.ReadAllBytes(output));
    }

    [Fact]
    public async Task A_fresh_entry_without_pieces_is_not_mistaken_for_a_lost_journal()
    {
        var (_, seeded) = await SeedAsync("origin");
        var store = new ContentStore(_dir.Combine("downloader"));
        using (var fresh = store.OpenOrCreate(seeded.Manifest, seeded.Signature)) Assert.False(fresh.RebuiltJournal);
        using var again = store.TryOpen(seeded.Id)!;
        Assert.False(again.RebuiltJournal);
        Assert.True(again.Verified.IsEmpty);
        seeded.Dispose();
    }

    [Theory]
    [InlineData("delete-manifest")]
    [InlineData("garbage-manifest")]
    [InlineData("other-manifest")]
    [InlineData("delete-signature")]
    [InlineData("garbage-signature")]
    public async Task A_damaged_manifest_or_signature_never_blocks_the_id_and_the_entry_is_rebuilt_around_its_data(string damage)
    {
        var (store, content) = await SeedAsync();
        var (manifest, signature, id, dir) = (content.Manifest, content.Signature, content.Id, content.Directory);
        content.Dispose();
        string manifestPath = Path.Combine(dir, "manifest"), signaturePath = Path.Combine(dir, "signature");
        string otherManifest;
        using (var other = await Ingest.FileAsync(new ContentStore(_dir.Combine("other")), _dir.WriteRandomFile("other.bin", 1000, 3), _key, null, Ct))
            otherManifest = Path.Combine(other.Directory, "manifest");
        switch (damage)
        {
            case "delete-manifest": File.Delete(manifestPath); break;
            case "garbage-manifest": File.WriteAllBytes(manifestPath, [0xde, 0xad, 0xbe, 0xef, 0x91]); break;
            case "other-manifest": File.Copy(otherManifest, manifestPath, overwrite: true); break;
            case "delete-signature": File.Delete(signaturePath); break;
            case "garbage-signature": File.WriteAllBytes(signaturePath, new byte[64]); break;
        }

        Assert.Null(store.TryOpen(id)); // never trusted, never a crash
        Assert.DoesNotContain(id, store.List());
        Assert.Null(store.TryOpen(id)); // and stays quiet

        // A peer sends the manifest again: the entry is rebuilt and its intact data re-hashed, nothing refetched.
        using var rebuilt = store.OpenOrCreate(manifest, signature);
        Assert.True(rebuilt.IsComplete);
        Assert.Contains(id, store.List());
        string output = _dir.Combine("out.bin");
        rebuilt.Export(output);
        Assert.Equal(_original, File.ReadAllBytes(output));
    }
}
