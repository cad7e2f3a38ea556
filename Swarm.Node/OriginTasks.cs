using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Sources;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// URLs as content: ingest from the origin once, publish a signed pointer record (task key → content id) in the DHT, and
/// resolve pointers so other nodes fetch through the swarm.
/// </summary>
public static class OriginTasks
{
    public static readonly TimeSpan PointerLifetime = TimeSpan.FromHours(24);

    /// <summary>
    /// Fetches the URL from its origin into the store and returns the sealed entry with the origin's validators (and the
    /// whole content's SHA-256). With a Content-Length, the ingest is live: a live entry (<see cref="Manifest.Live"/>) is
    /// served from the first piece on, each piece hashed, signed and announced as soon as it is read, and
    /// <paramref name="onLive"/> is told its id and the validators (to publish a pointer) before the body is read; a live
    /// entry left by an earlier, interrupted ingest of the same origin version is continued (with a range request where the
    /// origin allows). Without a Content-Length the body is spooled to disk first.
    /// </summary>
    public static async Task<Ingested> IngestAsync(LocalNode node, Uri url, Hash256 taskKey, OriginClient origin, IProgress<(long Done, long Total)>? progress,
        Func<ContentId, OriginValidators, Task>? onLive, CancellationToken cancellationToken)
    {
        var response = await origin.GetAsync(url, cancellationToken).ConfigureAwait(false);
        if (response.Content.Headers.ContentLength is { } length)
            return await IngestLiveAsync(node, url, taskKey, origin, response, length, progress, onLive, cancellationToken).ConfigureAwait(false);
        using var _ = response;
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        // No Content-Length: the piece layout needs the length, so spool to a temporary file first.
        string spool = Path.Combine(node.Store.TempRoot, "spool-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        try
        {
            await using (var file = new FileStream(spool, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                await body.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
            Hash256 whole;
            await using (var file = new FileStream(spool, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan))
                whole = new Hash256(await SHA256.HashDataAsync(file, cancellationToken).ConfigureAwait(false));
            var content = await node.Store.IngestFileAsync(spool, node.Key, null, cancellationToken).ConfigureAwait(false);
            return new Ingested(content, OriginValidators.FromResponse(response, content.Layout.Length) with { Sha256 = whole });
        }
        finally
        {
            File.Delete(spool);
        }
    }

    private static async Task<Ingested> IngestLiveAsync(LocalNode node, Uri url, Hash256 taskKey, OriginClient origin, HttpResponseMessage response, long length,
        IProgress<(long Done, long Total)>? progress, Func<ContentId, OriginValidators, Task>? onLive, CancellationToken cancellationToken)
    {
        // The origin's version goes into the live id, so an interrupted ingest resumes only into the same version.
        string validator = response.Headers.ETag?.ToString() ?? response.Content.Headers.LastModified?.ToString("R")
            ?? "nonce:" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var validators = OriginValidators.FromResponse(response, length);
        var layout = PieceLayout.For(length);
        var content = node.Store.OpenOrCreate(Manifest.Live(length, layout.PieceSize, node.Key.PublicKey, taskKey, validator), []);
        try
        {
            content.AcquireWriter();
        }
        catch
        {
            content.Dispose();
            response.Dispose();
            throw;
        }
        var swarm = node.Engine.Serve(content);
        if (swarm.Content != content) content.Dispose();
        content = swarm.Content!;

        // Pieces an earlier, interrupted run stored are re-hashed before they are built on: one that rotted on disk is
        // dropped and read from the origin again, instead of being sealed into the content (and served) as it is.
        if (content.Verified.Count > 0) content.CheckStoredPieces(null);
        int first = 0;
        while (first < layout.PieceCount && content.Verified[first]) first++;
        // Where the body is read from is settled first: a resume leaves the full response at once (for a range request),
        // so the origin is not kept sending bytes this run already holds while the entry is announced.
        Stream? body = null;
        if (first < layout.PieceCount)
            body = await ResumingOriginStream.OpenAtAsync(origin, url, response, length, layout.PieceOffset(first), cancellationToken).ConfigureAwait(false);
        else
            response.Dispose(); // an earlier run read everything but stopped before sealing
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            await node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
            if (onLive != null) await onLive(content.Id, validators).ConfigureAwait(false);
            // The whole content's SHA-256 goes into the sealed pointer: pieces an earlier run stored are hashed from disk.
            HashStored(content, first, whole);
            if (body != null)
            {
                using var guard = UplinkGuard.Enter(node.Engine, () => content.VerifiedBytes);
                await ReadPiecesAsync(node, origin.Display(url), body, content, swarm, first, whole, progress, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            if (body != null) await body.DisposeAsync().ConfigureAwait(false);
        }
        var sealedManifest = content.Manifest.Seal() ?? throw new InvalidOperationException("ingest finished with pieces missing");
        byte[] signature = node.Key.Sign(sealedManifest.SignedPayload());
        var sealedContent = node.Store.SealLive(content, signature);
        swarm.OnLocalSeal(signature, sealedContent);
        return new Ingested(sealedContent, validators with { Sha256 = new Hash256(whole.GetHashAndReset()) });
    }

    /// <summary>Feeds pieces [0, <paramref name="count"/>) of a stored content into <paramref name="hash"/>.</summary>
    private static void HashStored(StoredContent content, int count, IncrementalHash hash)
    {
        if (count == 0) return;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(content.Layout.PieceSize);
        try
        {
            for (int piece = 0; piece < count; piece++)
            {
                var span = buffer.AsSpan(0, content.Layout.PieceLength(piece));
                content.Read(content.Layout.PieceOffset(piece), span);
                hash.AppendData(span);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads pieces <paramref name="first"/>.. from the origin's <paramref name="body"/> (positioned at piece <paramref name="first"/>) into a live entry, in two overlapping stages.</summary>
    private static async Task ReadPiecesAsync(LocalNode node, string shown, Stream body, StoredContent content, ContentSwarm swarm,
        int first, IncrementalHash whole, IProgress<(long Done, long Total)>? progress, CancellationToken cancellationToken)
    {
        var layout = content.Layout;
        long length = layout.Length;
        // Two stages: the origin is read into one buffer while the previous piece is hashed, signed and written.
        var filled = System.Threading.Channels.Channel.CreateBounded<(int Piece, AlignedBuffer Buffer)>(2);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reader = Task.Run(async () =>
        {
            try
            {
                for (int piece = first; piece < layout.PieceCount; piece++)
                {
                    var buffer = AlignedBuffer.Rent(layout.PieceSize);
                    try
                    {
                        await body.ReadExactlyAsync(buffer.Memory[..layout.PieceLength(piece)], stop.Token).ConfigureAwait(false);
                    }
                    catch (EndOfStreamException e)
                    {
                        AlignedBuffer.Return(buffer);
                        throw new OriginException($"{shown} ended before its {length:N0} bytes (it shrank, or the connection broke); try again", e);
                    }
                    catch
                    {
                        AlignedBuffer.Return(buffer);
                        throw;
                    }
                    await filled.Writer.WriteAsync((piece, buffer), stop.Token).ConfigureAwait(false);
                }
                filled.Writer.Complete();
            }
            catch (Exception e)
            {
                filled.Writer.Complete(e);
            }
        }, CancellationToken.None);
        try
        {
            byte[] hash = new byte[Hash256.Size];
            await foreach (var (piece, buffer) in filled.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    whole.AppendData(buffer.Span[..layout.PieceLength(piece)]);
                    if (!content.Verified[piece]) StorePiece(node, content, swarm, piece, buffer, hash);
                    progress?.Report((layout.PieceOffset(piece) + layout.PieceLength(piece), length));
                }
                finally
                {
                    AlignedBuffer.Return(buffer);
                }
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false); // a reader blocked on a full channel must not outlive a failed write
            try { await reader.ConfigureAwait(false); } catch (Exception) { } // its error, if any, came through the channel
            while (filled.Reader.TryRead(out var left)) AlignedBuffer.Return(left.Buffer);
        }
    }

    /// <summary>Hashes and signs one piece read from the origin, stores it and announces it.</summary>
    private static void StorePiece(LocalNode node, StoredContent content, ContentSwarm swarm, int piece, AlignedBuffer buffer, byte[] hash)
    {
        var data = buffer.Span[..content.Layout.PieceLength(piece)];
        SHA256.HashData(data, hash);
        content.Manifest.SetPieceHash(piece, hash, node.Key.Sign(content.Manifest.PieceHashPayload(piece, hash)));
        content.CommitVerifiedPiece(piece, data);
        swarm.OnLocalPiece(piece);
    }

    /// <summary>
    /// Publishes "this task is that content, ingested by me from the origin version <paramref name="validators"/> names" in
    /// the DHT: the sealed content, or (<paramref name="live"/>) the live content of an ingest still running. Returns how
    /// many nodes stored it. Sequence numbers count per publisher: a record never replaces another publisher's.
    /// </summary>
    public static async Task<int> PublishPointerAsync(LocalNode node, Hash256 taskKey, ContentId id, OriginValidators validators, CancellationToken cancellationToken, bool live = false)
    {
        if (node.Dht == null) return 0;
        var record = node.Dht.CreateRecord(taskKey, TaskPointer.Encode(id, live, validators), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            DateTimeOffset.UtcNow + (live ? LeaseLifetime * 4 : PointerLifetime));
        return await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every publisher's current pointer for the task (at most one each, the DHT's bounded set), unexpired and well-formed.</summary>
    public static async Task<List<TaskPointer>> ResolvePointersAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return [];
        var records = await node.Dht.GetAsync(taskKey, null, cancellationToken).ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow;
        var pointers = new List<TaskPointer>();
        foreach (var r in records)
            if (r.Expires > now && TaskPointer.TryDecode(r) is { } p) pointers.Add(p);
        return pointers;
    }

    /// <summary>The pointer <paramref name="trust"/> chooses for the task (by default: any publisher's, sealed and newest first), or null.</summary>
    public static async Task<TaskPointer?> ResolvePointerAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken, TaskTrust? trust = null)
    {
        var pointers = await ResolvePointersAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        return await (trust ?? TaskTrust.Any).ChooseAsync(pointers, cancellationToken).ConfigureAwait(false);
    }

    public static readonly TimeSpan LeaseLifetime = TimeSpan.FromSeconds(15);

    /// <summary>The DHT key of the cold-start leases of a task.</summary>
    public static Hash256 LeaseKey(Hash256 taskKey)
    {
        Span<byte> b = stackalloc byte[14 + Hash256.Size];
        "swarm/lease/v1"u8.CopyTo(b);
        taskKey.CopyTo(b[14..]);
        return Hash256.Of(b);
    }

    /// <summary>
    /// Cold start without a herd: every node that finds no pointer publishes a short lease record for the task, waits a
    /// moment for the others' to arrive, and the lowest node id among the live leases ingests from the origin; the rest wait
    /// for its pointer and fetch through the swarm. The holder renews its lease while it ingests; if it dies, the lease
    /// expires and the others elect again. A node with an empty routing table is alone and goes to the origin. Which
    /// leases count is <paramref name="trust"/>'s call (lifetime capped, holders without an ingest ignored).
    /// </summary>
    public static async Task<LeaseResult> TryTakeLeaseAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        if (node.Dht == null || await node.EnsureJoinedAsync(cancellationToken).ConfigureAwait(false) == 0) return new LeaseResult(true, 0);
        await RenewLeaseAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        // Read three times over 1.5 s: a lease put at the same moment by another node may reach the DHT a little later.
        int others = 0;
        for (int look = 0; look < 3; look++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            var live = await LiveLeasesAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
            if (live.Count == 0 && look == 0) live = await LiveLeasesAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
            others = Math.Max(others, live.Count(id => id != node.Key.NodeId));
            if (live.Count > 0 && live.Min() != node.Key.NodeId) return new LeaseResult(false, others);
        }
        return new LeaseResult(true, others);
    }

    private static async Task<List<Hash256>> LiveLeasesAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        var leases = await node.Dht!.GetAsync(LeaseKey(taskKey), null, cancellationToken).ConfigureAwait(false);
        return trust.LiveLeases(leases, node.Key.NodeId, DateTime.UtcNow);
    }

    public static async Task RenewLeaseAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return;
        var now = DateTimeOffset.UtcNow;
        var record = node.Dht.CreateRecord(LeaseKey(taskKey), node.Key.NodeId.ToArray(), now.ToUnixTimeMilliseconds(), now + LeaseLifetime);
        await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The node holding the lease for the task (lowest node id among the leases <paramref name="trust"/> believes), or null.</summary>
    public static async Task<Hash256?> LeaseHolderAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return null;
        var live = await LiveLeasesAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
        return live.Count == 0 ? null : live.Min();
    }

    /// <summary>The SHA-256 in a <c>sha256:HEX</c> digest; <see cref="FormatException"/> when it is not one.</summary>
    public static Hash256 ParseDigest(string digest)
    {
        const string prefix = "sha256:";
        if (!digest.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !Hash256.TryParseHex(digest.AsSpan(prefix.Length), out var expected))
            throw new FormatException($"--digest '{digest}' is not sha256:<64 hex digits>");
        return expected;
    }

    /// <summary>Checks the whole content against a <c>sha256:HEX</c> digest before it is exported.</summary>
    public static void VerifyDigest(StoredContent content, string digest)
    {
        var expected = ParseDigest(digest);
        using var stream = new FileStream(content.DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 20, FileOptions.SequentialScan);
        var actual = new Hash256(SHA256.HashData(stream));
        if (actual != expected)
            throw new DigestMismatchException($"the content's SHA-256 is sha256:{actual.ToHex()}, not the expected {digest}; the output was not written");
    }
}

/// <summary>What an ingest from an origin produced: the sealed entry and the origin's validators, with the whole content's SHA-256.</summary>
public sealed record Ingested(StoredContent Content, OriginValidators Validators);

/// <summary>Whether this node won the lease, and how many other nodes were asking for the same task at the time.</summary>
public readonly record struct LeaseResult(bool IsHolder, int Others);

/// <summary>The whole content does not match the digest the user asked for.</summary>
public sealed class DigestMismatchException : Exception
{
    public DigestMismatchException(string message) : base(message) { }
    public DigestMismatchException() { }
    public DigestMismatchException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Keeps an ingester's uploads from starving its own download from the origin: when the uplink is full, the
/// acknowledgements of the origin download queue behind upload data (measured in the lab: the origin download fell from
/// 48 to about 10 Mbit/s for seconds at a time). Once a second it compares the ingest rate with its recent best; when the
/// ingest falls below 60% of it while this node uploads, the upload limit is set to 85% of the current upload rate, and
/// raised by 10% a second while the ingest runs at 90% or better; the node's own limit is restored at the end.
/// </summary>
internal sealed class UplinkGuard : IDisposable
{
    // One guard per engine, shared by every ingest it runs at once (an image's layers are ingested together): the ingest
    // rate it watches is theirs together, and the node's own limit is restored only when the last one ends.
    private static readonly Dictionary<Swarm.Core.Exchange.SwarmEngine, UplinkGuard> Guards = [];

    private readonly Swarm.Core.Exchange.SwarmEngine _engine;
    private readonly List<Source> _sources = [];
    private readonly long _configuredUpload;
    private readonly Timer _timer;
    private long _lastUploaded;
    private double _best, _cap;

    private sealed class Source(Func<long> ingested)
    {
        public readonly Func<long> Ingested = ingested;
        public long Last = ingested();
    }

    private UplinkGuard(Swarm.Core.Exchange.SwarmEngine engine, bool timer)
    {
        _engine = engine;
        _configuredUpload = engine.UploadRate;
        _lastUploaded = engine.TotalBytesUploaded;
        _timer = timer ? new Timer(_ => Tick(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)) : new Timer(_ => { });
    }

    public UplinkGuard(Swarm.Core.Exchange.SwarmEngine engine) : this(engine, timer: false) { } // for tests: fed through Observe

    /// <summary>Starts guarding an ingest (<paramref name="ingested"/>: its bytes so far); dispose the result when it ends.</summary>
    public static IDisposable Enter(Swarm.Core.Exchange.SwarmEngine engine, Func<long> ingested)
    {
        var source = new Source(ingested);
        UplinkGuard guard;
        lock (Guards)
        {
            if (!Guards.TryGetValue(engine, out guard!)) Guards[engine] = guard = new UplinkGuard(engine, timer: true);
            lock (guard._sources) guard._sources.Add(source);
        }
        return new Lease(guard, source);
    }

    private sealed class Lease(UplinkGuard guard, Source source) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            lock (Guards)
            {
                bool last;
                lock (guard._sources)
                {
                    guard._sources.Remove(source);
                    last = guard._sources.Count == 0;
                    guard._best = 0; // fewer ingests now: their rate together is learnt again, not compared with the old best
                }
                if (!last) return;
                Guards.Remove(guard._engine);
            }
            guard.Dispose();
        }
    }

    private void Tick()
    {
        double ingestRate = 0;
        lock (_sources)
        {
            foreach (var s in _sources)
            {
                long now = s.Ingested();
                ingestRate += now - s.Last;
                s.Last = now;
            }
        }
        long uploaded = _engine.TotalBytesUploaded;
        double uploadRate = uploaded - _lastUploaded;
        _lastUploaded = uploaded;
        Observe(ingestRate, uploadRate);
    }

    /// <summary>One second's ingest and upload, in bytes.</summary>
    internal void Observe(double ingestRate, double uploadRate)
    {
        _best = Math.Max(_best * 0.98, ingestRate);
        if (uploadRate > 0 && ingestRate < 0.6 * _best)
        {
            _cap = Math.Max(512 * 1024, 0.85 * uploadRate);
            Apply();
        }
        else if (_cap > 0 && ingestRate >= 0.9 * _best)
        {
            _cap *= 1.1;
            Apply();
        }
    }

    private void Apply()
    {
        long cap = (long)_cap;
        if (_configuredUpload > 0 && cap >= _configuredUpload) cap = _configuredUpload;
        if (cap != _engine.UploadRate) _engine.SetRates(cap, _engine.DownloadRate);
    }

    public void Dispose()
    {
        _timer.Dispose();
        if (_cap > 0) _engine.SetRates(_configuredUpload, _engine.DownloadRate);
    }
}
