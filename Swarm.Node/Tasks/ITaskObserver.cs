using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>
/// What a running task reports, to whoever shows it: the node's task list (and through it <c>swarm status</c>), or the
/// CLI's progress line when it runs the task itself. Calls come on the task's threads, in order; each must be cheap.
/// </summary>
public interface ITaskObserver
{
    /// <summary>The content the task fetches or ingests into, as soon as it is known (a live entry first, then the sealed one).</summary>
    void OnContent(ContentId id);

    /// <summary>Bytes read from the origin (or the registry) so far, of <paramref name="total"/>.</summary>
    void OnOrigin(long done, long total);

    /// <summary>Bytes ingested from a local file so far, of <paramref name="total"/>.</summary>
    void OnIngest(long done, long total);

    /// <summary>How the transfer through the swarm stands.</summary>
    void OnSwarm(TransferProgress progress);

    /// <summary>A line worth telling the user (waiting for another node's ingest, the origin used, …); already scrubbed of secrets by the caller.</summary>
    void Say(string line);
}
