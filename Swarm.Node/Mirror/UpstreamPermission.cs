using System.Collections.Concurrent;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// Whether this node may serve a digest from the swarm or its store. The upstream decides: a HEAD with this node's
/// credentials (or anonymously, when it has none) must succeed. When the upstream cannot be reached, a registry with
/// credentials configured refuses (a private image never reaches a node that could not fetch it itself), and an
/// anonymous one serves unless some node marked the digest as fetched with credentials. Answers are cached a minute.
/// </summary>
internal sealed class UpstreamPermission(OciContent content)
{
    private readonly ConcurrentCache _allowed = new();

    /// <summary>Null when allowed, else why not.</summary>
    public async Task<string?> RefusalAsync(RegistryClient upstream, string name, string digest, bool manifest, CancellationToken cancellationToken)
    {
        string key = $"{upstream.Registry}/{name}@{digest}";
        if (_allowed.Fresh(key)) return null;
        try
        {
            if (manifest) await upstream.HeadManifestAsync(name, digest, cancellationToken).ConfigureAwait(false);
            else await upstream.HeadBlobAsync(name, digest, cancellationToken).ConfigureAwait(false);
            _allowed.Add(key);
            return null;
        }
        catch (RegistryException e) when (e.Failure == RegistryFailure.Unavailable && !upstream.HasCredentials)
        {
            if (await content.IsMarkedPrivateAsync(digest, cancellationToken).ConfigureAwait(false))
                return $"{upstream.Registry} is unreachable ({e.Message}) and {digest} was fetched with credentials elsewhere; this node has none for {upstream.Registry}, so it is not served from the swarm";
            _allowed.Add(key);
            return null;
        }
        catch (RegistryException e)
        {
            return upstream.HasCredentials
                ? $"{upstream.Registry} did not confirm that this node may read {name}@{digest} with its credentials ({e.Message}); not serving it from the swarm"
                : $"{upstream.Registry} does not let this node read {name}@{digest} ({e.Message})";
        }
    }

    /// <summary>Keys remembered for a minute.</summary>
    private sealed class ConcurrentCache
    {
        private readonly ConcurrentDictionary<string, DateTime> _until = new();
        public bool Fresh(string key) => _until.TryGetValue(key, out var until) && until > DateTime.UtcNow;
        public void Add(string key)
        {
            _until[key] = DateTime.UtcNow.AddMinutes(1);
            if (_until.Count > 10_000) foreach (var old in _until.Where(p => p.Value < DateTime.UtcNow).Select(p => p.Key).ToList()) _until.TryRemove(old, out _);
        }
    }
}
