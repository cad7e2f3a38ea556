using System.Buffers;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// The mirror's blobs by digest: from this node's store, else through the swarm (or the upstream), served as their pieces
/// are verified; HEAD and single byte ranges. The last bytes of a blob wait until the whole blob matched its digest.
/// </summary>
internal sealed class BlobEndpoint(LocalNode node, OciContent oci, MirrorCounters counters, ILogger logger)
{
    /// <summary>How long to wait for the first bytes of a blob (from the swarm or the upstream) before answering 404.</summary>
    public TimeSpan FirstByteTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>A stream that makes no progress for this long is cut (the client retries or moves on).</summary>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>A blob by digest (the caller has checked that this node may serve it).</summary>
    public async Task ServeAsync(HttpContext context, RegistryClient upstream, string name, string digest, bool head)
    {
        var ct = context.RequestAborted;
        const string Unknown = "BLOB_UNKNOWN";
        var local = oci.Local(digest);
        var fetch = local == null ? oci.Fetch(digest, upstream, name, manifest: false) : null;
        MirrorObservation.Of(context)?.Via(fetch);
        StoredContent? Current() => local ?? fetch!.Current(node.Engine);
        // The length: from the local copy, else from the content the fetch goes into as soon as it is known.
        long length;
        var firstDeadline = DateTime.UtcNow + FirstByteTimeout;
        while (true)
        {
            if (Current() is { } c)
            {
                length = c.Layout.Length;
                break;
            }
            if (fetch!.Completion.IsFaulted || DateTime.UtcNow > firstDeadline)
            {
                string why = fetch.Completion.Exception?.InnerException?.Message ?? $"nothing arrived within {FirstByteTimeout.TotalSeconds:0} s";
                await RegistryError.WriteAsync(context, 404, Unknown, $"neither the swarm nor {upstream.Registry} could serve {name}@{digest}: {why}").ConfigureAwait(false);
                return;
            }
            await fetch.WaitAsync(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
        }
        var response = context.Response;
        response.Headers["Docker-Content-Digest"] = digest;
        response.Headers.ETag = $"\"{digest}\"";
        response.Headers.AcceptRanges = "bytes";
        response.ContentType = "application/octet-stream";
        long start = 0, end = length - 1;
        if (context.Request.Headers.Range.ToString() is { Length: > 0 } rangeHeader && ByteRange.TryParse(rangeHeader, length, out long rs, out long re, out bool satisfiable))
        {
            if (!satisfiable)
            {
                response.Headers.ContentRange = $"bytes */{length}";
                await RegistryError.WriteAsync(context, 416, "BLOB_UNKNOWN", $"range {rangeHeader} is outside the blob's {length} bytes").ConfigureAwait(false);
                return;
            }
            (start, end) = (rs, re);
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {start}-{end}/{length}";
        }
        response.ContentLength = end - start + 1;
        if (head || length == 0) return;
        try
        {
            await StreamAsync(context, fetch, Current, start, end + 1, length).ConfigureAwait(false);
        }
        catch (PieceRottenException e) when (!context.Response.HasStarted)
        {
            // Nothing was sent yet: say so instead of a 200; the piece is dropped, so the next request fetches the blob again.
            logger.LogWarning("mirror: the stored copy of {Digest} failed its hash check ({Error}); answered 503, the next request fetches it again", digest, e.Message);
            counters.Cut();
            context.Response.Clear();
            context.Response.Headers.RetryAfter = "1";
            await RegistryError.WriteAsync(context, 503, "BLOB_UNKNOWN", $"the node's stored copy of {digest} failed its hash check and was dropped; retry, and it is fetched again").ConfigureAwait(false);
        }
        catch (Exception failure) when (failure is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            var e = failure;
            logger.LogWarning("mirror: serving {Digest} stopped after headers were sent: {Error}", digest, e.Message);
            counters.Cut();
            context.Abort(); // the client sees a cut body, never bytes that failed verification
        }
    }

    /// <summary>
    /// Streams [<paramref name="from"/>, <paramref name="to"/>) of a blob as its pieces are verified. The last bytes of the
    /// blob are held back until the whole blob has matched its digest, so a client never receives a complete wrong blob.
    /// </summary>
    private async Task StreamAsync(HttpContext context, BlobFetch? fetch, Func<StoredContent?> current, long from, long to, long length)
    {
        var ct = context.RequestAborted;
        const int Tail = 64 * 1024;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            long pos = from;
            int disposedInARow = 0;
            var lastProgress = DateTime.UtcNow;
            while (pos < to)
            {
                var content = current();
                bool verifiedWhole = fetch == null || fetch.Completion.IsCompletedSuccessfully;
                long limit = verifiedWhole || to < length - Tail ? to : Math.Max(from, length - Tail);
                if (content != null && pos < limit)
                {
                    if (content.Layout.Length != length) throw new InvalidDataException($"the swarm's content for the blob is {content.Layout.Length} bytes, not {length}");
                    int piece = (int)(pos / content.Layout.PieceSize);
                    if (content.IsComplete || content.Verified[piece])
                    {
                        long pieceEnd = content.Layout.PieceOffset(piece) + content.Layout.PieceLength(piece);
                        int n = (int)Math.Min(Math.Min(buffer.Length, pieceEnd - pos), limit - pos);
                        try
                        {
                            // Checked against the piece's hashes: bytes that changed on disk are never sent.
                            content.ReadVerified(pos, buffer.AsSpan(0, n));
                        }
                        catch (ObjectDisposedException)
                        {
                            // A live entry was just sealed or dropped: the next round reads its successor.
                            if (++disposedInARow > 40) throw new InvalidDataException("the content being served went away from the store");
                            await Task.Delay(25, ct).ConfigureAwait(false);
                            continue;
                        }
                        disposedInARow = 0;
                        await context.Response.Body.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        counters.Served(n);
                        pos += n;
                        lastProgress = DateTime.UtcNow;
                        continue;
                    }
                }
                if (fetch == null) throw new InvalidDataException("the local copy is incomplete");
                if (fetch.Completion.IsFaulted) throw fetch.Completion.Exception!.InnerException!;
                if (DateTime.UtcNow - lastProgress > StallTimeout) throw new TimeoutException($"no new bytes for {StallTimeout.TotalSeconds:0} s");
                await fetch.WaitAsync(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
