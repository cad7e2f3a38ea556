using Swarm.Core;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// The one way a <c>get</c> or <c>seed</c> runs: for a task the node runs for a client, and for a CLI command that runs it
/// in its own process. A request (<see cref="TaskRequest"/>, the same one the CLI would hand to a node) goes in; the
/// verified, exported content comes out, and progress goes to an <see cref="ITaskObserver"/>. What differs between the
/// two lives outside: how identical requests share a transfer (<see cref="IFetchSharing"/>), which publishers are
/// trusted, whether registries are configured (<see cref="TaskRunnerContext"/>), and how the output file is written
/// (a <see cref="TaskExport"/>: by default the node writes the path).
/// </summary>
public sealed class TaskRunner(LocalNode node, TaskRunnerContext context)
{
    /// <summary>Checks a request before anything runs; <see cref="ArgumentException"/> says what is wrong with it.</summary>
    public static void Validate(TaskRequest request)
    {
        if (request.Output != null && !Path.IsPathFullyQualified(request.Output)) throw new ArgumentException($"output '{request.Output}' must be an absolute path");
        bool url = OriginRequest.AsUrl(request.Source) != null;
        if (request.Kind == TaskKind.Get && !url && !ContentId.TryParse(request.Source, out _))
            throw new ArgumentException($"'{request.Source}' is not a content id or URL: expected swarm:// followed by 64 hex digits (as printed by 'swarm seed') or an http(s) URL");
        if (IsImage(request))
        {
            if (request.Kind != TaskKind.Seed) throw new ArgumentException("oci:// references are for 'swarm seed' (preheat); pull images through the registry mirror");
            try
            {
                OciReference.Parse(request.Source);
                if (request.Platform != null) OciPlatform.Parse(request.Platform);
            }
            catch (FormatException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }
        else if (request.Kind == TaskKind.Seed && !url && !File.Exists(request.Source)) throw new ArgumentException($"file not found: {request.Source}");
        if (request.Digest != null)
        {
            try
            {
                ContentDigest.Parse(request.Digest);
            }
            catch (FormatException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }
        OriginRequest.ParseHeaders(request.Headers);
        foreach (var peer in request.Peers) EndPoints.Parse(peer);
    }

    private static bool IsImage(TaskRequest request) => request.Source.StartsWith("oci://", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Runs the request. <paramref name="export"/> writes the output when it is not the path itself (a file the client
    /// handed over); by default the verified content is exported to <see cref="TaskRequest.Output"/>.
    /// </summary>
    public async Task<TaskOutcome> RunAsync(TaskRequest request, ITaskObserver observer, CancellationToken cancellationToken, TaskExport? export = null)
    {
        // One trace per task, in the process that does the work: the phases (lookup, peers, pieces, export) are its children.
        using var span = Telemetry.StartTrace(request.Kind == TaskKind.Get ? "swarm.get" : "swarm.seed");
        span?.SetTag("swarm.source", IsImage(request) ? "oci" : OriginRequest.AsUrl(request.Source) != null ? "url" : request.Kind == TaskKind.Get ? "content_id" : "file");
        try
        {
            var outcome = await RunCoreAsync(request, observer, export, cancellationToken).ConfigureAwait(false);
            span?.SetTag("swarm.content_id", outcome.Content?.Id.ToUri());
            span?.SetTag("swarm.bytes", outcome.Bytes);
            return outcome;
        }
        catch (Exception e)
        {
            span.Fail(TaskFailure.Classify(e).ToString().ToLowerInvariant());
            throw;
        }
    }

    private async Task<TaskOutcome> RunCoreAsync(TaskRequest request, ITaskObserver observer, TaskExport? export, CancellationToken cancellationToken)
    {
        Validate(request);
        if (request.Kind == TaskKind.Seed)
            return IsImage(request) ? await PreheatAsync(request, observer, cancellationToken).ConfigureAwait(false)
                : await SeedAsync(request, observer, cancellationToken).ConfigureAwait(false);
        var fetched = OriginRequest.AsUrl(request.Source) is { } url
            ? await GetUrlAsync(request, url, observer, cancellationToken).ConfigureAwait(false)
            : await GetIdAsync(request, ContentId.Parse(request.Source), observer, cancellationToken).ConfigureAwait(false);
        var content = fetched.Content;
        observer.OnContent(content.Id);
        if (request.Digest is { } digest) ContentDigest.Verify(content, digest);
        if (request.Output != null || export != null)
        {
            using var exporting = Telemetry.Source.StartActivity("swarm.export");
            content = await (export ?? ExportToPath)(content, request.Output ?? "the output", fetched.VerifiedInMemory, Peers(request),
                new InlineProgress<TransferProgress>(observer.OnSwarm), cancellationToken).ConfigureAwait(false);
        }
        return new TaskOutcome(content, content.Id.ToUri(), content.Layout.Length, fetched.FromOrigin, 0, fetched.AlreadyLocal, fetched.Contenders, SwarmId: fetched.SwarmId);
    }

    private Task<StoredContent> ExportToPath(StoredContent content, string output, Bitfield? verifiedInMemory, System.Net.IPEndPoint[] peers,
        IProgress<TransferProgress> progress, CancellationToken cancellationToken) =>
        node.ExportCheckedAsync(content, output, verifiedInMemory, peers, progress, cancellationToken);

    private static System.Net.IPEndPoint[] Peers(TaskRequest request) => [.. request.Peers.Select(EndPoints.Parse)];

    private readonly record struct Fetched(StoredContent Content, Bitfield? VerifiedInMemory, bool FromOrigin, int Contenders, long AlreadyLocal, ContentId SwarmId);

    /// <summary>A URL: through the swarm when a pointer leads there, else the cold-start election, else the origin.</summary>
    private async Task<Fetched> GetUrlAsync(TaskRequest request, Uri url, ITaskObserver observer, CancellationToken cancellationToken)
    {
        var fetch = new UrlFetchRequest(url, TaskKey.For(url, request.Tag, request.Filters))
        {
            Headers = OriginRequest.ParseHeaders(request.Headers),
            BackToSource = !request.NoBackToSource,
            WaitForOthers = node.Engine.Options.StallTimeout,
            Peers = Peers(request),
            Display = TaskKey.Redact(url, request.Filters),
            TrustedPublishers = context.TrustedPublishers,
            Digest = request.Digest is { } d ? ContentDigest.Parse(d) : null,
        };
        var result = await context.Sharing.RunAsync("url:" + fetch.TaskKey.ToHex(), Variant(request), observer, (shared, token) =>
            UrlFetch.RunAsync(node, fetch with { OnContent = shared.OnContent }, new InlineProgress<TransferProgress>(shared.OnSwarm), new InlineProgress<(long Done, long Total)>(p => shared.OnOrigin(p.Done, p.Total)),
                shared.Say, token), cancellationToken).ConfigureAwait(false);
        return new Fetched(result.Content, result.VerifiedInMemory, result.FromOrigin, result.Contenders, 0, result.SwarmId);
    }

    /// <summary>A content id: from the peers given and those the DHT knows.</summary>
    private async Task<Fetched> GetIdAsync(TaskRequest request, ContentId id, ITaskObserver observer, CancellationToken cancellationToken)
    {
        observer.OnContent(id);
        var peers = Peers(request);
        long already = 0;
        var result = await context.Sharing.RunAsync("id:" + id.Hex, "", observer, async (shared, token) =>
        {
            var before = node.SnapshotVerified(id);
            if (before != null) using (var existing = node.Store.TryOpen(id)) already = existing?.VerifiedBytes ?? 0;
            if (peers.Length == 0 && !node.CanDiscover && already == 0)
                throw new ArgumentException("no way to find peers: give --bootstrap IP:PORT (a DHT node) or --peer IP:PORT (a node serving this content)");
            var downloaded = await node.Engine.DownloadAsync(id, peers, new InlineProgress<TransferProgress>(shared.OnSwarm), token,
                node.CanDiscover ? node.Discovery : null).ConfigureAwait(false);
            return new UrlFetchResult(downloaded, false, 0, id, downloaded.VerifiedSince(before));
        }, cancellationToken).ConfigureAwait(false);
        return new Fetched(result.Content, result.VerifiedInMemory, false, 0, already, id);
    }

    /// <summary>A file or a URL ingested (signed by this node) and served; for a URL, its pointer published, live first.</summary>
    private async Task<TaskOutcome> SeedAsync(TaskRequest request, ITaskObserver observer, CancellationToken cancellationToken)
    {
        StoredContent content;
        bool fromOrigin = false;
        if (OriginRequest.AsUrl(request.Source) is { } url)
        {
            var key = TaskKey.For(url, request.Tag, request.Filters);
            using var origin = new OriginClient(OriginRequest.ParseHeaders(request.Headers), filters: request.Filters);
            var ingested = await OriginIngest.RunAsync(node, url, key, origin, new InlineProgress<(long Done, long Total)>(p => observer.OnOrigin(p.Done, p.Total)),
                (live, validators) =>
                {
                    observer.OnContent(live);
                    // Published at once: gets that start during the ingest fetch pieces from this node as it reads them.
                    return TaskPointers.PublishAsync(node, key, live, validators, cancellationToken, live: true);
                }, cancellationToken).ConfigureAwait(false);
            content = ingested.Content;
            await node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
            if (await TaskPointers.PublishAsync(node, key, content.Id, ingested.Validators, cancellationToken).ConfigureAwait(false) == 0)
                observer.Say($"no DHT node stored the pointer for {TaskKey.Redact(url, request.Filters)} (no bootstrap node?): a get of the URL elsewhere goes to the origin");
            fromOrigin = true;
        }
        else
        {
            long total = new FileInfo(request.Source).Length;
            content = await Ingest.FileAsync(node.Store, request.Source, node.Key, new InlineProgress<long>(d => observer.OnIngest(d, total)), cancellationToken).ConfigureAwait(false);
            await node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
        }
        observer.OnContent(content.Id);
        return new TaskOutcome(content, content.Id.ToUri(), content.Layout.Length, fromOrigin, 0, 0, 0, SwarmId: content.Id);
    }

    /// <summary>An image (oci://) preheated into the swarm: every blob of the index or of one platform ingested and served.</summary>
    private async Task<TaskOutcome> PreheatAsync(TaskRequest request, ITaskObserver observer, CancellationToken cancellationToken)
    {
        if (context.Oci == null || context.Registries == null) throw new InvalidOperationException("this runner has no registry configuration for oci:// sources");
        var preheat = await Mirror.OciPreheat.RunAsync(node, context.Oci, context.Registries, OciReference.Parse(request.Source),
            request.Platform is { } platform ? OciPlatform.Parse(platform) : null,
            new InlineProgress<(long Done, long Total)>(p => observer.OnIngest(p.Done, p.Total)), observer.Say, cancellationToken).ConfigureAwait(false);
        return new TaskOutcome(null, preheat.Digest, preheat.Bytes, false, preheat.FromUpstream, 0, 0,
            $"{preheat.Manifests} manifest(s), {preheat.Blobs} blob(s)");
    }

    /// <summary>
    /// What, besides the key, decides a URL fetch's result: requests that differ in it do not share a fetch (another
    /// request's credentials must not stand in for this one's, nor its digest or fallback rule).
    /// </summary>
    private static string Variant(TaskRequest request) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n",
            [request.Digest ?? "", request.NoBackToSource ? "no-back-to-source" : "", string.Join("\u0001", request.Filters), .. request.Headers]))));
}
