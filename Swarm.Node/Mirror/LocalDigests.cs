using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// Which content in this node's store is which digest: every content verified against a digest is remembered in an
/// index file (<c>digests</c>, one "digest id" a line) that outlives restarts; a remembered content that was evicted,
/// damaged or lost pieces to rot is forgotten, so it is fetched again.
/// </summary>
internal sealed class LocalDigests
{
    private readonly LocalNode _node;
    private readonly ILogger _logger;
    private readonly string _indexPath;
    private readonly ConcurrentDictionary<string, ContentId> _digests = new(StringComparer.Ordinal);
    private readonly Lock _indexLock = new();

    public LocalDigests(LocalNode node, string directory, ILogger logger)
    {
        _node = node;
        _logger = logger;
        _indexPath = Path.Combine(directory, "digests");
        LoadIndex();
    }

    private void LoadIndex()
    {
        if (!File.Exists(_indexPath)) return;
        foreach (var line in File.ReadLines(_indexPath))
        {
            var parts = line.Split(' ');
            if (parts.Length == 2 && Oci.IsSha256Digest(parts[0]) && ContentId.TryParse(ContentId.Scheme + parts[1], out var id)) _digests[parts[0]] = id;
        }
    }

    /// <summary>The digests remembered now.</summary>
    public List<string> Known => _digests.Keys.ToList();

    /// <summary>Content id → digest of everything this node has verified against a digest.</summary>
    public IReadOnlyDictionary<ContentId, string> Digests
    {
        get
        {
            var map = new Dictionary<ContentId, string>();
            foreach (var (digest, id) in _digests) map[id] = digest;
            return map;
        }
    }

    /// <summary>Records that a verified content is the blob with this digest.</summary>
    public void Remember(string digest, ContentId id)
    {
        if (_digests.TryGetValue(digest, out var known) && known == id) return;
        _digests[digest] = id;
        lock (_indexLock) File.AppendAllText(_indexPath, $"{digest} {id.Hex}\n");
    }

    /// <summary>A complete, verified local copy of the digest, or null.</summary>
    public StoredContent? Local(string digest)
    {
        if (!_digests.TryGetValue(digest, out var id)) return null;
        if (_node.Engine.Find(id)?.Content is { IsComplete: true } served) return served;
        try
        {
            var opened = _node.Store.TryOpen(id);
            if (opened is { IsComplete: true })
            {
                var swarm = _node.Engine.Serve(opened);
                if (swarm.Content != opened) opened.Dispose();
                return swarm.Content;
            }
            // It was complete when remembered: a partial entry now lost pieces to rot in the store. The refetch removes it first.
            if (opened != null) _rotten[digest] = id;
            opened?.Dispose();
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            _logger.LogWarning("the stored copy of {Digest} is damaged: {Error}", digest, e.Message);
        }
        _digests.TryRemove(digest, out _); // evicted or damaged: fetch it again
        return null;
    }

    /// <summary>Digests whose remembered content is in the store but no longer complete (pieces dropped as rotten).</summary>
    private readonly ConcurrentDictionary<string, ContentId> _rotten = new(StringComparer.Ordinal);

    /// <summary>
    /// Before a digest whose copy rotted is fetched again: removes that copy and the live entry it was sealed from. The
    /// sealed entry's data file is a hard link to the live one's, so the live entry holds the same rotten bytes while its
    /// journal still calls them verified, and the engine keeps its writer lock: a new ingest from the upstream would resume
    /// into it (same origin version, same live id) and fail to take the lock on every request, or seal the rotten bytes
    /// again. Removed, the refetch starts from a fresh entry, from the swarm or the upstream.
    /// </summary>
    public async Task RemoveRottenCopyAsync(string digest)
    {
        if (!_rotten.TryRemove(digest, out var id) || _digests.ContainsKey(digest)) return;
        foreach (var swarm in _node.Engine.Swarms)
        {
            if (swarm.Content is { Manifest.IsLive: true } live && swarm.Sealed?.Id == id)
                await _node.RemoveAsync(live.Id).ConfigureAwait(false);
        }
        await _node.RemoveAsync(id).ConfigureAwait(false);
        _logger.LogInformation("mirror: the stored copy of {Digest} ({Id}) lost pieces that failed their hash check; removed, it is fetched again", digest, id.ToUri());
    }
}
