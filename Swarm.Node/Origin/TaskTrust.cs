using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;

namespace Swarm.Node;

/// <summary>
/// Which pointers and leases of one task a fetch believes, kept for the length of that fetch. Anyone may publish a
/// pointer for any URL, so a pointer is used only when it names the version the origin serves now (its validators match
/// the origin's, asked once per fetch), or — with the origin unreachable — when a trusted publisher signed it or the user
/// gave the content's digest. Leases are believed for at most <see cref="ColdStartLease.Lifetime"/> from the moment this
/// node first saw each one, and a lease holder that publishes no pointer within <see cref="HolderGrace"/> stops counting.
/// </summary>
public sealed class TaskTrust
{
    /// <summary>How long a lease holder may take to show its ingest (a live pointer) before the others stop waiting for it.</summary>
    public static readonly TimeSpan HolderGrace = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);

    private readonly Uri? _url;
    private readonly string _display;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _headers;
    private readonly Dictionary<(Hash256 Publisher, long Sequence), DateTime> _leaseFirstSeen = [];
    private readonly Dictionary<Hash256, DateTime> _holderSince = [];
    private readonly HashSet<Hash256> _ignoredHolders = [];
    private Task<OriginProbeResult>? _probe;

    /// <param name="url">The origin URL (null: content known by digest only).</param>
    /// <param name="display">The URL as it may be shown (redacted).</param>
    /// <param name="headers">Request headers for the origin (credentials).</param>
    /// <param name="trusted">Node ids whose pointers count without the origin; when not empty, only theirs count at all.</param>
    /// <param name="digest">The SHA-256 the whole content must have (<c>--digest</c>, an OCI digest), or null.</param>
    public TaskTrust(Uri? url, string display, IReadOnlyList<KeyValuePair<string, string>> headers, IReadOnlySet<Hash256> trusted, Hash256? digest)
    {
        _url = url;
        _display = display;
        _headers = headers;
        Trusted = trusted;
        Digest = digest;
    }

    /// <summary>Trusts every pointer (content checked by other means, e.g. an OCI digest checked after the fetch).</summary>
    public static TaskTrust Any { get; } = new(null, "", [], new HashSet<Hash256>(), null);

    public IReadOnlySet<Hash256> Trusted { get; }
    public Hash256? Digest { get; }

    /// <summary>What was said about pointers that were not used (for the fetch's log), or null.</summary>
    public string? LastNote { get; private set; }

    /// <summary>The origin's answer to the probe, once asked.</summary>
    public Task<OriginProbeResult> ProbeAsync(CancellationToken cancellationToken) =>
        _probe ??= _url == null
            ? Task.FromResult(new OriginProbeResult(OriginProbeOutcome.Unreachable, null, "no origin"))
            : OriginProbe.RunAsync(_url, _headers, ProbeTimeout, cancellationToken);

    /// <summary>
    /// The pointer to fetch, or null when none may be used (the URL is then treated as new content: one node ingests the
    /// current version and the others fetch it from the swarm). Throws <see cref="PeerUnavailableException"/> when
    /// pointers exist but none can be checked: the origin is unreachable and neither trusted publishers nor a digest say
    /// which one is right.
    /// </summary>
    public async Task<TaskPointer?> ChooseAsync(IReadOnlyList<TaskPointer> pointers, CancellationToken cancellationToken)
    {
        var candidates = Trusted.Count > 0 ? pointers.Where(p => Trusted.Contains(p.Publisher)).ToList() : [.. pointers];
        if (candidates.Count == 0)
        {
            if (pointers.Count > 0 && Trusted.Count > 0) LastNote = $"{pointers.Count} pointer(s) for {_display}, none by a trusted publisher";
            return null;
        }
        if (Digest is { } digest)
        {
            // The whole content is checked against the digest before it is used, so any pointer may be tried; one that
            // claims the digest first.
            return candidates.Where(p => p.Validators.Sha256 == null || p.Validators.Sha256 == digest)
                .OrderByDescending(p => p.Validators.Sha256 == digest).ThenBy(p => p.Live).ThenByDescending(p => p.Sequence).FirstOrDefault();
        }
        if (_url == null) return Best(candidates);
        var probe = await ProbeAsync(cancellationToken).ConfigureAwait(false);
        switch (probe.Outcome)
        {
            case OriginProbeOutcome.Current:
                var current = probe.Validators!;
                var matching = candidates.Where(p => p.Validators.Matches(current)).ToList();
                if (matching.Count == 0)
                {
                    LastNote = $"the swarm's pointer(s) for {_display} name another version than the origin serves now ({current}); fetching the current version";
                    return null;
                }
                // Two pointers that agree with the origin's validators but not on the bytes: one of their publishers lies
                // (or the origin serves different bytes under one ETag). Nothing tells which, so neither is used.
                var hashes = matching.Where(p => p.Validators.Sha256 != null).Select(p => p.Validators.Sha256!.Value).Distinct().Count();
                if (hashes > 1 && Trusted.Count == 0)
                {
                    LastNote = $"pointers for {_display} match the origin's validators but disagree on the content; fetching from the origin";
                    return null;
                }
                return Best(matching);
            case OriginProbeOutcome.Refused:
                LastNote = $"{probe.Detail}; not using the swarm's copy of {_display}";
                return null;
            default:
                if (Trusted.Count > 0) return Best(candidates);
                throw new PeerUnavailableException(
                    $"the origin of {_display} cannot be checked ({probe.Detail}), and the swarm's copy is only used when the origin confirms it is current. " +
                    "To use the swarm while the origin is down, give --digest sha256:<hex> of the file, or set trusted-publishers to the node ids (or node.key files) of your seed hosts");
        }
    }

    private static TaskPointer Best(List<TaskPointer> pointers) =>
        pointers.OrderBy(p => p.Live).ThenByDescending(p => p.Sequence).First();

    /// <summary>
    /// The publishers of the leases this node believes: not expired, seen for less than a lease lifetime (whatever the
    /// record claims), not given up on, and — with trusted publishers set — only theirs (and this node's own).
    /// </summary>
    public List<Hash256> LiveLeases(IEnumerable<SignedRecord> leases, Hash256 self, DateTime now)
    {
        var result = new List<Hash256>();
        foreach (var r in leases)
        {
            if (r.Expires.UtcDateTime <= now || _ignoredHolders.Contains(r.Publisher)) continue;
            if (r.Publisher != self && Trusted.Count > 0 && !Trusted.Contains(r.Publisher)) continue;
            var key = (r.Publisher, r.Sequence);
            if (!_leaseFirstSeen.TryGetValue(key, out var first)) _leaseFirstSeen[key] = first = now;
            if (now - first > ColdStartLease.Lifetime) continue;
            if (!result.Contains(r.Publisher)) result.Add(r.Publisher);
        }
        if (_leaseFirstSeen.Count > 4096) _leaseFirstSeen.Clear(); // bounded: a flood of leases costs a re-read, not memory
        return result;
    }

    /// <summary>
    /// Whether to go on waiting for <paramref name="holder"/>, which holds the lease but has published no pointer this
    /// fetch would use: yes for <see cref="HolderGrace"/> from when it was first seen as holder. A holder that shows no
    /// ingest by then (a forged lease) is ignored from then on.
    /// </summary>
    public bool StillWaitingFor(Hash256 holder, DateTime now)
    {
        if (!_holderSince.TryGetValue(holder, out var since)) _holderSince[holder] = since = now;
        if (now - since <= HolderGrace) return true;
        _ignoredHolders.Add(holder);
        LastNote = $"the node {holder.ToHex()[..12]} holds the lease for {_display} but shows no ingest; no longer waiting for it";
        return false;
    }
}
