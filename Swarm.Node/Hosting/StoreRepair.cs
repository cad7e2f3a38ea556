using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>Content that lost pieces to rot in the store is fetched again from peers in the background, one repair per content at a time.</summary>
public sealed class StoreRepair : IDisposable
{
    private readonly LocalNode _node;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;

    public StoreRepair(LocalNode node, ILogger logger, CancellationToken stopping)
    {
        _node = node;
        _logger = logger;
        _stopping = stopping;
        node.Engine.PieceRotten += OnPieceRotten;
    }

    private readonly ConcurrentDictionary<ContentId, bool> _repairs = new();

    private void OnPieceRotten(StoredContent content, int piece)
    {
        // One repair per content at a time; pieces that rot while it runs are fetched by the same download.
        if (_stopping.IsCancellationRequested || content.Manifest.IsLive || !_repairs.TryAdd(content.Id, true)) return;
        _ = Task.Run(() => RepairAsync(content.Id));
    }

    private async Task RepairAsync(ContentId id)
    {
        try
        {
            var node = _node;
            _logger.LogInformation("repair: fetching the pieces of {Id} that failed their hash check in the store from peers", id.ToUri());
            var content = await node.Engine.DownloadAsync(id, [], null, _stopping, node.Discovery).ConfigureAwait(false);
            _logger.LogInformation("repair of {Id} done: all {Pieces} pieces verified again", id.ToUri(), content.Layout.PieceCount);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { }
        catch (Exception e) when (e is PeerUnavailableException or IOException or InvalidOperationException)
        {
            _logger.LogWarning("repair of {Id} failed: {Error}; its rotten pieces stay missing (not served) until a later 'swarm get' of it fetches them", id.ToUri(), e.Message);
        }
        finally
        {
            _repairs.TryRemove(id, out _);
        }
    }

    /// <summary>Stops watching for rotten pieces (repairs under way end with the node's stop).</summary>
    public void Dispose() => _node.Engine.PieceRotten -= OnPieceRotten;
}
