using Swarm.Core;
using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// <c>swarm get URL</c>: the pointer in the DHT → the swarm; no pointer → the cold-start lease (one node ingests from the
/// origin, serving pieces as it reads them, and the others fetch them from it and from each other); a swarm that cannot
/// serve → the origin (back-to-source), unless that is turned off.
/// </summary>
public static class UrlFetch
{
    /// <summary>
    /// Fetches the URL once per data directory: content this data directory already fetched for the task key is used when
    /// <see cref="TaskTrust"/> accepts its record (as it would a DHT pointer); otherwise the fetch runs under the task key's
    /// <see cref="TaskKeyLock"/>, so a second process (or request) for the same key waits for the first and then exports
    /// what it fetched, instead of colliding with it on the store entry. A holder that dies releases the lock and a waiter
    /// takes over, resuming from the pieces it journalled.
    /// </summary>
    public static async Task<UrlFetchResult> RunAsync(LocalNode node, UrlFetchRequest request, IProgress<TransferProgress>? swarmProgress,
        IProgress<(long Done, long Total)>? originProgress, Action<string> say, CancellationToken cancellationToken)
    {
        var trust = new TaskTrust(request.Url, request.Shown, request.Headers, request.TrustedPublishers, request.Digest);
        if (await FromRecordAsync(node, request, trust, say, cancellationToken).ConfigureAwait(false) is { } known) return known;
        using var held = await TaskKeyLock.AcquireAsync(node.DataDirectory, request.TaskKey, request.Shown, request.WaitForOthers, say, cancellationToken).ConfigureAwait(false);
        if (held.Waited && await FromRecordAsync(node, request, trust, say, cancellationToken).ConfigureAwait(false) is { } done) return done;
        var heartbeatSwarm = new InlineProgress<TransferProgress>(p => { held.Progressed(); swarmProgress?.Report(p); });
        var heartbeatOrigin = new InlineProgress<(long Done, long Total)>(p => { held.Progressed(); originProgress?.Report(p); });
        var result = await FetchAsync(node, request, trust, heartbeatSwarm, heartbeatOrigin, say, cancellationToken).ConfigureAwait(false);
        if (result.Validators is { } validators && !result.Content.Manifest.IsLive)
        {
            try
            {
                LocalTaskRecord.Write(node.DataDirectory, request.TaskKey, result.Content.Id, validators);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Only an optimisation: without it, a later request asks the DHT or the origin again.
                say($"swarm: could not note {request.Shown} in {LocalTaskRecord.DirectoryFor(node.DataDirectory)} ({e.Message}); later requests fetch it again");
            }
        }
        return result;
    }

    /// <summary>
    /// The content this data directory recorded for the task key, when the store holds it complete and
    /// <paramref name="trust"/> accepts the record (the origin confirms the version, or a digest is given); else null.
    /// </summary>
    private static async Task<UrlFetchResult?> FromRecordAsync(LocalNode node, UrlFetchRequest request, TaskTrust trust, Action<string> say, CancellationToken cancellationToken)
    {
        if (LocalTaskRecord.TryRead(node.DataDirectory, request.TaskKey, node.Key.NodeId) is not { } pointer) return null;
        TaskPointer? chosen;
        try
        {
            chosen = await ChooseAsync(trust, [pointer], say, cancellationToken).ConfigureAwait(false);
        }
        catch (PeerUnavailableException)
        {
            return null; // the origin cannot confirm it: the ordinary fetch decides (and says why it fails, if it does)
        }
        if (chosen == null) return null;
        var content = node.Engine.Find(chosen.Id)?.Content;
        if (content == null)
        {
            StoredContent? opened;
            try
            {
                opened = node.Store.TryOpen(chosen.Id);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                return null;
            }
            if (opened is not { IsComplete: true })
            {
                opened?.Dispose();
                return null;
            }
            var swarm = node.Engine.Serve(opened);
            if (swarm.Content != opened) opened.Dispose();
            content = swarm.Content ?? opened;
        }
        if (!content.IsComplete) return null;
        await node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
        request.OnContent?.Invoke(content.Id);
        return new UrlFetchResult(content, false, 0, content.Id, null, chosen.Validators);
    }

    private static async Task<UrlFetchResult> FetchAsync(LocalNode node, UrlFetchRequest request, TaskTrust trust, IProgress<TransferProgress>? swarmProgress,
        IProgress<(long Done, long Total)>? originProgress, Action<string> say, CancellationToken cancellationToken)
    {
        var url = request.Shown;
        bool joined = node.Dht is { } dht && dht.GetStats().RoutingTableSize > 0;
        TaskPointer? pointer = null;
        if (joined)
        {
            using var resolving = Telemetry.Source.StartActivity("swarm.resolve"); // the URL's pointers in the DHT
            pointer = await ResolveAsync(node, request, trust, say, cancellationToken).ConfigureAwait(false);
        }
        var deadline = DateTime.UtcNow + request.WaitForOthers;
        int contenders = 0;
        bool swarmFailed = false;
        while (true)
        {
            if (pointer is { } p)
            {
                try
                {
                    var before = node.SnapshotVerified(p.Id);
                    var fetched = await FromSwarmAsync(node, request, trust, p, swarmProgress, cancellationToken).ConfigureAwait(false);
                    return new UrlFetchResult(fetched, false, contenders, p.Id, fetched.VerifiedSince(before), p.Live ? null : p.Validators);
                }
                catch (IngesterGoneException e) when (request.BackToSource)
                {
                    say($"swarm: {e.Message}; choosing another node to fetch {url} from the origin");
                    pointer = null;
                }
                catch (PeerUnavailableException e) when (request.BackToSource)
                {
                    say($"swarm: the swarm could not serve {url} ({e.Message}); fetching from the origin");
                    swarmFailed = true;
                }
            }
            if (!request.BackToSource)
                throw new PeerUnavailableException($"no node in the swarm serves {url} and --no-back-to-source was given");

            if (!swarmFailed && DateTime.UtcNow < deadline)
            {
                // Cold start: one node takes the lease and goes to the origin; the others wait for its pointer.
                var lease = await ColdStartLease.TryTakeAsync(node, request.TaskKey, trust, cancellationToken).ConfigureAwait(false);
                // The last election's count: leases given up on (a forged one, a holder that died) are no longer in it, so
                // an ingester does not linger for contenders that are not there.
                contenders = lease.Others;
                if (!lease.IsHolder)
                {
                    say($"swarm: another node is fetching {url} from the origin; fetching from it as it reads");
                    pointer = await WaitForPointerAsync(node, request, trust, deadline, say, cancellationToken).ConfigureAwait(false);
                    if (pointer != null || DateTime.UtcNow < deadline) continue; // fetch it, or elect again (the holder went away)
                }
                else if (!joined && node.Dht!.GetStats().RoutingTableSize > 0)
                {
                    // The first bootstrap failed and the lease election joined the DHT: a seed may have published a pointer.
                    joined = true;
                    pointer = await ResolveAsync(node, request, trust, say, cancellationToken).ConfigureAwait(false);
                    if (pointer != null) continue;
                }
            }
            var (content, inMemory, validators) = await FromOriginAsync(node, request, originProgress, cancellationToken).ConfigureAwait(false);
            return new UrlFetchResult(content, true, contenders, content.Id, inMemory, validators);
        }
    }

    /// <summary>The pointer this fetch may use (see <see cref="TaskTrust"/>), saying once why others were passed over.</summary>
    private static async Task<TaskPointer?> ResolveAsync(LocalNode node, UrlFetchRequest request, TaskTrust trust, Action<string> say, CancellationToken cancellationToken)
    {
        var pointers = await TaskPointers.ResolveAllAsync(node, request.TaskKey, cancellationToken).ConfigureAwait(false);
        return await ChooseAsync(trust, pointers, say, cancellationToken).ConfigureAwait(false);
    }

    /// <summary><see cref="TaskTrust.ChooseAsync"/>, saying why pointers were passed over when that is news.</summary>
    private static async Task<TaskPointer?> ChooseAsync(TaskTrust trust, IReadOnlyList<TaskPointer> pointers, Action<string> say, CancellationToken cancellationToken)
    {
        string? before = trust.LastNote;
        var chosen = await trust.ChooseAsync(pointers, cancellationToken).ConfigureAwait(false);
        if (trust.LastNote is { } note && note != before) say("swarm: " + note);
        return chosen;
    }

    /// <summary>
    /// Polls for the lease holder's pointer; null when the lease lapsed without one, the holder showed no ingest within
    /// <see cref="TaskTrust.HolderGrace"/> (a forged lease), or the deadline passed.
    /// </summary>
    private static async Task<TaskPointer?> WaitForPointerAsync(LocalNode node, UrlFetchRequest request, TaskTrust trust, DateTime deadline, Action<string> say, CancellationToken cancellationToken)
    {
        while (DateTime.UtcNow < deadline)
        {
            if (await ResolveAsync(node, request, trust, say, cancellationToken).ConfigureAwait(false) is { } found) return found;
            var holder = await ColdStartLease.HolderAsync(node, request.TaskKey, trust, cancellationToken).ConfigureAwait(false);
            if (holder == null) return null;
            if (!trust.StillWaitingFor(holder.Value, DateTime.UtcNow))
            {
                say("swarm: " + trust.LastNote);
                return null;
            }
            await Task.Delay(250, cancellationToken).ConfigureAwait(false);
        }
        return null;
    }

    /// <summary>
    /// Downloads what the pointer names. For a live pointer, watches the ingest: when the lease lapses while the pointer
    /// is still live (the ingester died), the download is abandoned with <see cref="IngesterGoneException"/>.
    /// </summary>
    private static async Task<StoredContent> FromSwarmAsync(LocalNode node, UrlFetchRequest request, TaskTrust trust, TaskPointer pointer, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        request.OnContent?.Invoke(pointer.Id);
        if (!pointer.Live)
            return await node.Engine.DownloadAsync(pointer.Id, request.Peers, progress, cancellationToken, node.Discovery).ConfigureAwait(false);
        using var watch = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var download = node.Engine.DownloadAsync(pointer.Id, request.Peers, progress, watch.Token, node.Discovery);
        bool gone = false;
        while (!download.IsCompleted)
        {
            if (await Task.WhenAny(download, Task.Delay(TimeSpan.FromSeconds(2), cancellationToken)).ConfigureAwait(false) == download) break;
            cancellationToken.ThrowIfCancellationRequested();
            if (await ColdStartLease.HolderAsync(node, request.TaskKey, trust, cancellationToken).ConfigureAwait(false) != null) continue;
            var pointers = await TaskPointers.ResolveAllAsync(node, request.TaskKey, cancellationToken).ConfigureAwait(false);
            // Sealed by the node we fetch from: the ingest finished, the pieces are all out there.
            if (pointers.Any(p => p.Publisher == pointer.Publisher && !p.Live)) continue;
            gone = true;
            await watch.CancelAsync().ConfigureAwait(false);
            break;
        }
        try
        {
            return await download.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (gone && !cancellationToken.IsCancellationRequested)
        {
            throw new IngesterGoneException("the node that was fetching it from the origin went away");
        }
    }

    /// <summary>Ingests from the origin under a renewed lease, publishing the live pointer at once and the sealed one at the end.</summary>
    private static async Task<(StoredContent Content, Bitfield InMemory, OriginValidators Validators)> FromOriginAsync(LocalNode node, UrlFetchRequest request, IProgress<(long Done, long Total)>? progress, CancellationToken cancellationToken)
    {
        Bitfield? heldBefore = null; // pieces an earlier, interrupted ingest left in the live entry: read from disk, not from the origin now
        using var renew = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ContentId? live = null;
        OriginValidators? liveValidators = null;
        // The lease and the live pointer are renewed together while the ingest runs, however long it takes.
        var renewing = node.Dht == null ? Task.CompletedTask : Task.Run(async () =>
        {
            while (!renew.IsCancellationRequested)
            {
                await ColdStartLease.RenewAsync(node, request.TaskKey, renew.Token).ConfigureAwait(false);
                if (live is { } id && liveValidators != null)
                    await TaskPointers.PublishAsync(node, request.TaskKey, id, liveValidators, renew.Token, live: true).ConfigureAwait(false);
                await Task.Delay(ColdStartLease.Lifetime / 3, renew.Token).ConfigureAwait(false);
            }
        }, renew.Token);
        Ingested ingested;
        using var ingesting = Telemetry.Source.StartActivity("swarm.origin"); // the ingest from the origin, pieces served as they are read
        try
        {
            using var origin = new OriginClient(request.Headers);
            ingested = await OriginIngest.RunAsync(node, request.Url, request.TaskKey, origin, progress,
                async (id, validators) =>
                {
                    liveValidators = validators;
                    heldBefore = node.SnapshotVerified(id);
                    live = id;
                    request.OnContent?.Invoke(id);
                    await TaskPointers.PublishAsync(node, request.TaskKey, id, validators, cancellationToken, live: true).ConfigureAwait(false);
                }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await renew.CancelAsync().ConfigureAwait(false);
            try { await renewing.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
        var content = ingested.Content;
        await node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
        await TaskPointers.PublishAsync(node, request.TaskKey, content.Id, ingested.Validators, cancellationToken).ConfigureAwait(false);
        return (content, content.VerifiedSince(heldBefore), ingested.Validators);
    }
}
