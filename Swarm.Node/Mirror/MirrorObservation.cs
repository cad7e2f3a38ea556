using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Swarm.Core;

namespace Swarm.Node.Mirror;

/// <summary>
/// What one mirror request is, for its metrics and its span: started when the request arrives, told the request's kind and
/// registry once it is known to be a manifest or blob request, and where the bytes came from (this node's store or the
/// swarm, or the upstream); at the end it records the result — <c>swarm</c>, <c>upstream</c>, <c>miss</c> (404) or
/// <c>error</c> (any other failure, a stream cut after its headers) — with the duration and the time to the first byte
/// (<see cref="NodeInstruments"/>), and ends the <c>swarm.mirror</c> span. Requests that never got that far (a malformed
/// path, <c>/v2/</c>, a tag list) are counted by <see cref="MirrorCounters"/> only.
/// </summary>
internal sealed class MirrorObservation : IDisposable
{
    private static readonly object Key = new();
    private readonly HttpContext _context;
    private readonly Activity? _span;
    private readonly long _start = Stopwatch.GetTimestamp();
    private long _firstByte;
    private bool? _manifest;
    private string _registry = "other";
    private bool _fromUpstream;
    private BlobFetch? _fetch;

    private MirrorObservation(HttpContext context)
    {
        _context = context;
        _span = Telemetry.StartTrace("swarm.mirror");
        _span?.SetTag("http.request.method", context.Request.Method);
        context.Items[Key] = this;
        context.Response.OnStarting(static state =>
        {
            var self = (MirrorObservation)state;
            if (self._firstByte == 0) self._firstByte = Stopwatch.GetTimestamp();
            return Task.CompletedTask;
        }, this);
    }

    /// <summary>Starts observing a request (dispose at its end).</summary>
    public static MirrorObservation Start(HttpContext context) => new(context);

    /// <summary>The observation of a request, if it is being observed.</summary>
    public static MirrorObservation? Of(HttpContext context) => context.Items.TryGetValue(Key, out var o) ? o as MirrorObservation : null;

    /// <summary>
    /// The registries that are labels of their own: the default upstream, those <c>mirror-registries</c> allows and those
    /// <c>registries.json</c> configures (lower case). Any other is "other": a client cannot make up label values.
    /// </summary>
    public static IReadOnlySet<string> Known(string defaultUpstream, IEnumerable<string>? allowed, IEnumerable<string> configured) =>
        new HashSet<string>(new[] { defaultUpstream }.Concat(allowed ?? []).Concat(configured).Select(r => r.ToLowerInvariant()), StringComparer.Ordinal);

    /// <summary>A well-formed manifest or blob request for <paramref name="registry"/>: from here on it is counted.</summary>
    public void Requested(bool manifest, string registry, IReadOnlySet<string> known)
    {
        _manifest = manifest;
        string lower = registry.ToLowerInvariant();
        _registry = known.Contains(lower) ? lower : "other";
        _span?.SetTag("swarm.kind", manifest ? "manifest" : "blob");
        _span?.SetTag("swarm.registry", _registry);
    }

    /// <summary>The answer comes from the upstream (true: a tag resolved there) or from this node without it (false).</summary>
    public void From(bool upstream) => _fromUpstream = upstream;

    /// <summary>The answer comes from a fetch (swarm or upstream, whichever it used), or from the local copy when null.</summary>
    public void Via(BlobFetch? fetch) => _fetch = fetch;

    public void Dispose()
    {
        int status = _context.Response.StatusCode;
        bool cut = _context.RequestAborted.IsCancellationRequested;
        string result = status == 404 ? "miss"
            : status >= 400 || cut ? "error"
            : _fromUpstream || _fetch?.UsedUpstream == true ? "upstream" : "swarm";
        long now = Stopwatch.GetTimestamp();
        // A response not started yet (a HEAD, headers only) goes out now.
        if (_manifest is { } manifest)
            NodeInstruments.MirrorAnswered(manifest, _registry, result, Stopwatch.GetElapsedTime(_start, now), Stopwatch.GetElapsedTime(_start, _firstByte == 0 ? now : _firstByte));
        if (_span == null) return;
        _span.SetTag("http.response.status_code", status);
        _span.SetTag("swarm.result", result);
        if (result == "error") _span.Fail(cut ? "the response was cut" : "error response");
        _span.Dispose();
    }
}
