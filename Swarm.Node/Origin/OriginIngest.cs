using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// A URL ingested from its origin into the store. With a Content-Length the ingest is live: a live entry
/// (<see cref="Manifest.Live"/>) is served from the first piece on, each piece hashed, signed and announced as soon as it
/// is read (<see cref="PiecePipeline"/>). An ingest that is stopped keeps what it read (whole pieces in the entry, the
/// start of the next one in <see cref="PartialPiece"/>) and leaves a record (<see cref="LocalTaskRecord"/>, live) so that
/// the next run asks the origin for the rest only: a range request conditional on the same version (<c>If-Range</c>).
/// Without a Content-Length the body is spooled to disk first.
/// </summary>
public static class OriginIngest
{
    /// <summary>
    /// Fetches the URL into the store and returns the sealed entry with the origin's validators (and the whole content's
    /// SHA-256). <paramref name="onLive"/> is told the live entry's id and the validators (to publish a pointer) before
    /// the body is read.
    /// </summary>
    public static async Task<Ingested> RunAsync(LocalNode node, Uri url, Hash256 taskKey, OriginClient origin, IProgress<(long Done, long Total)>? progress,
        Func<ContentId, OriginValidators, Task>? onLive, CancellationToken cancellationToken)
    {
        HttpResponseMessage? response = null;
        if (LocalTaskRecord.TryRead(node.DataDirectory, taskKey, node.Key.NodeId, live: true) is { } record)
        {
            var resumed = await TryContinueAsync(node, url, taskKey, origin, record, progress, onLive, cancellationToken).ConfigureAwait(false);
            if (resumed.Result is { } done) return done;
            response = resumed.Fresh; // the origin answered the whole body (another version, or no ranges): ingested below
        }
        response ??= await origin.GetAsync(url, cancellationToken).ConfigureAwait(false);
        if (response.Content.Headers.ContentLength is { } length)
        {
            // The origin's version goes into the live id, so an interrupted ingest resumes only into the same version.
            string validator = response.Headers.ETag?.ToString() ?? response.Content.Headers.LastModified?.ToString("R")
                ?? "nonce:" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
            var validators = OriginValidators.FromResponse(response, length);
            var (content, swarm) = OpenLive(node, taskKey, length, PieceLayout.For(length).PieceSize, validator, response);
            var (first, head) = HeldStart(content);
            Stream? body = null;
            try
            {
                // A resume leaves the full response at once (for a range request), so the origin is not kept sending
                // bytes this run already holds while the entry is announced.
                if (first < content.Layout.PieceCount)
                    body = await ResumingOriginStream.OpenAtAsync(origin, url, response, length, content.Layout.PieceOffset(first) + head.Length, cancellationToken).ConfigureAwait(false);
                else
                    response.Dispose(); // an earlier run read everything but stopped before sealing
                LocalTaskRecord.Write(node.DataDirectory, taskKey, content.Id, validators, live: true);
                return await ContinueAsync(node, origin.Display(url), content, swarm, body, first, head, validators, progress, onLive, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                if (body != null) await body.DisposeAsync().ConfigureAwait(false);
            }
        }
        return await SpoolAsync(node, response, cancellationToken).ConfigureAwait(false);
    }

    private readonly record struct Continued(Ingested? Result, HttpResponseMessage? Fresh);

    /// <summary>
    /// Continues the live entry an earlier run left (named by its record): the stored pieces re-hashed, then a range
    /// request for the rest, conditional on the version the entry was made from. A 200 instead (the origin changed, or
    /// ignores ranges) is handed back for a fresh ingest; a record whose entry is gone or odd is dropped.
    /// </summary>
    private static async Task<Continued> TryContinueAsync(LocalNode node, Uri url, Hash256 taskKey, OriginClient origin, TaskPointer record,
        IProgress<(long Done, long Total)>? progress, Func<ContentId, OriginValidators, Task>? onLive, CancellationToken cancellationToken)
    {
        Manifest? manifest;
        using (var held = node.Store.TryOpen(record.Id))
            manifest = held?.Manifest;
        var condition = manifest is { IsLive: true } && manifest.TaskKey == taskKey && manifest.IngesterKey.AsSpan().SequenceEqual(node.Key.PublicKey)
            && manifest.Layout.Length == record.Validators.Length ? IfRange(manifest.Validator) : null;
        if (manifest == null || condition == null)
        {
            LocalTaskRecord.DeleteLive(node.DataDirectory, taskKey);
            return default;
        }
        var (content, swarm) = OpenLive(node, taskKey, manifest.Layout.Length, manifest.Layout.PieceSize, manifest.Validator, null);
        var (first, head) = HeldStart(content);
        if (first >= content.Layout.PieceCount)
            return new(await ContinueAsync(node, origin.Display(url), content, swarm, null, first, head, record.Validators, progress, onLive, cancellationToken).ConfigureAwait(false), null);
        long at = content.Layout.PieceOffset(first) + head.Length;
        var response = await origin.GetAsync(url, cancellationToken, new RangeHeaderValue(at, null), condition).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.PartialContent || response.Content.Headers.ContentRange is not { } range
            || range.From != at || range.Length != content.Layout.Length || !SameVersion(response, manifest.Validator))
        {
            // Not the rest of this version (the origin changed, or ignores ranges): its answer is ingested as a fresh one;
            // the entry stays as it is (it is the swarm's, which serves what it holds).
            LocalTaskRecord.DeleteLive(node.DataDirectory, taskKey);
            if (response.StatusCode == HttpStatusCode.OK) return new(null, response);
            response.Dispose();
            return default;
        }
        await using var body = await ResumingOriginStream.ContinueAsync(origin, url, response, content.Layout.Length, at, cancellationToken).ConfigureAwait(false);
        return new(await ContinueAsync(node, origin.Display(url), content, swarm, body, first, head, record.Validators, progress, onLive, cancellationToken).ConfigureAwait(false), null);
    }

    /// <summary>The If-Range condition for a live entry's validator: a strong ETag or a date; none for a weak ETag or a nonce.</summary>
    private static RangeConditionHeaderValue? IfRange(string validator)
    {
        if (validator.StartsWith('"') && EntityTagHeaderValue.TryParse(validator, out var tag) && !tag.IsWeak) return new RangeConditionHeaderValue(tag);
        if (DateTimeOffset.TryParseExact(validator, "R", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var date))
            return new RangeConditionHeaderValue(date);
        return null;
    }

    /// <summary>A 206 that shows its version shows this one (an origin that ignores If-Range must not splice two versions).</summary>
    private static bool SameVersion(HttpResponseMessage response, string validator)
    {
        if (validator.StartsWith('"')) return response.Headers.ETag is not { } tag || tag.ToString() == validator;
        return response.Content.Headers.LastModified is not { } date || date.ToString("R") == validator;
    }

    /// <summary>Opens (or makes) the live entry for this origin version, takes its writer lock and serves it.</summary>
    private static (StoredContent Content, ContentSwarm Swarm) OpenLive(LocalNode node, Hash256 taskKey, long length, int pieceSize, string validator, IDisposable? response)
    {
        var manifest = Manifest.Live(length, pieceSize, node.Key.PublicKey, taskKey, validator);
        // Already served (an earlier attempt of this run opened it): the served instance is the one written to.
        if (node.Engine.Find(manifest.Id) is { Content: { } served } serving)
        {
            try
            {
                served.AcquireWriter();
            }
            catch
            {
                response?.Dispose();
                throw;
            }
            return (served, serving);
        }
        var content = node.Store.OpenOrCreate(manifest, []);
        try
        {
            content.AcquireWriter();
        }
        catch
        {
            content.Dispose();
            response?.Dispose();
            throw;
        }
        var swarm = node.Engine.Serve(content);
        if (swarm.Content != content) content.Dispose();
        return (swarm.Content!, swarm);
    }

    /// <summary>
    /// Where the ingest continues: the first piece not held (stored pieces are re-hashed first: one that rotted on disk is
    /// dropped and read again rather than sealed into the content), and the start of it an earlier run kept.
    /// </summary>
    private static (int First, byte[] Head) HeldStart(StoredContent content)
    {
        if (content.Verified.Count > 0) content.CheckStoredPieces(null);
        int first = 0;
        while (first < content.Layout.PieceCount && content.Verified[first]) first++;
        return (first, PartialPiece.Take(content, first));
    }

    private static async Task<Ingested> ContinueAsync(LocalNode node, string shown, StoredContent content, ContentSwarm swarm, Stream? body, int first, byte[] head,
        OriginValidators validators, IProgress<(long Done, long Total)>? progress, Func<ContentId, OriginValidators, Task>? onLive, CancellationToken cancellationToken)
    {
        var layout = content.Layout;
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
        if (onLive != null) await onLive(content.Id, validators).ConfigureAwait(false);
        // The whole content's SHA-256 goes into the sealed pointer: pieces an earlier run stored are hashed from disk.
        HashStored(content, first, whole);
        if (body != null)
        {
            using var guard = node.Uplink.Enter(() => content.VerifiedBytes);
            byte[] hash = new byte[Hash256.Size];
            try
            {
                await PiecePipeline.RunAsync(body, layout, first, head, (piece, data) =>
                {
                    whole.AppendData(data);
                    if (!content.Verified[piece]) StorePiece(node, content, swarm, piece, data, hash);
                    progress?.Report((layout.PieceOffset(piece) + data.Length, layout.Length));
                }, shown, (piece, data) => PartialPiece.Save(content, piece, data), cancellationToken).ConfigureAwait(false);
            }
            catch (EndOfStreamException e)
            {
                throw new OriginException(e.Message, e);
            }
        }
        var sealedManifest = content.Manifest.Seal() ?? throw new InvalidOperationException("ingest finished with pieces missing");
        byte[] signature = node.Key.Sign(sealedManifest.SignedPayload());
        var sealedContent = node.Store.SealLive(content, signature);
        swarm.OnLocalSeal(signature, sealedContent);
        LocalTaskRecord.DeleteLive(node.DataDirectory, content.Manifest.TaskKey);
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

    /// <summary>Hashes and signs one piece read from the origin, stores it and announces it.</summary>
    private static void StorePiece(LocalNode node, StoredContent content, ContentSwarm swarm, int piece, ReadOnlySpan<byte> data, byte[] hash)
    {
        SHA256.HashData(data, hash);
        content.Manifest.SetPieceHash(piece, hash, node.Key.Sign(content.Manifest.PieceHashPayload(piece, hash)));
        content.CommitVerifiedPiece(piece, data);
        swarm.OnLocalPiece(piece);
    }

    /// <summary>No Content-Length: the piece layout needs the length, so the body is spooled to a temporary file first.</summary>
    private static async Task<Ingested> SpoolAsync(LocalNode node, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var _ = response;
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        string spool = Path.Combine(node.Store.TempRoot, "spool-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        try
        {
            await using (var file = new FileStream(spool, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                await body.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
            Hash256 whole;
            await using (var file = new FileStream(spool, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan))
                whole = new Hash256(await SHA256.HashDataAsync(file, cancellationToken).ConfigureAwait(false));
            var content = await Ingest.FileAsync(node.Store, spool, node.Key, null, cancellationToken).ConfigureAwait(false);
            return new Ingested(content, OriginValidators.FromResponse(response, content.Layout.Length) with { Sha256 = whole });
        }
        finally
        {
            File.Delete(spool);
        }
    }
}
